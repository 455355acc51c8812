{
  "targets": [
    {
      "target_name": "switchyard",
      "sources": ["native/addon.cc", "native/shm_segment.cc", "native/shm_region.cc", "native/maglev.cc", "native/rate_limit.cc", "native/socket_peer.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra"],
      "libraries": ["-lrt"]
    }
  ]
}
