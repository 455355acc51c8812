{
  "targets": [
    {
      "target_name": "switchyard",
      "sources": [
        "native/addon.cc",
        "native/dsr_binding.cc",
        "native/dsr_flow_table.cc",
        "native/dsr_forwarder.cc",
        "native/dsr_packet.cc",
        "native/hash_binding.cc",
        "native/listen_socket.cc",
        "native/listen_socket_binding.cc",
        "native/maglev.cc",
        "native/maglev_binding.cc",
        "native/rate_limit.cc",
        "native/rate_table_binding.cc",
        "native/region_binding.cc",
        "native/shm_region.cc",
        "native/shm_segment.cc",
        "native/socket_peer.cc",
        "native/socket_peer_binding.cc",
        "native/startup_pages.cc",
        "native/startup_pages_binding.cc",
        "native/tcp_relay.cc",
        "native/tcp_relay_binding.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra"],
      "libraries": ["-lrt", "-lpthread"]
    }
  ]
}
