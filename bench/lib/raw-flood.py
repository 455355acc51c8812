# Floods an interface with TCP ACK segments to a VIP from `flows` source ports
# (AF_PACKET, prebuilt frames, as fast as one Python loop sends): the input of
# bench/dsr-forwarder.ts. argv: ifname dst_mac src_mac src_ip vip port flows seconds.
# Prints the number of frames sent.
import socket, struct, sys, time

ifname, dst_mac, src_mac, src_ip, vip = sys.argv[1:6]
port, flows, seconds = int(sys.argv[6]), int(sys.argv[7]), float(sys.argv[8])

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

mac = lambda m: bytes(int(x, 16) for x in m.split(":"))
saddr, daddr = socket.inet_aton(src_ip), socket.inet_aton(vip)
frames = []
for i in range(flows):
    tcp = struct.pack("!HHIIBBHHH", 1024 + i, port, 1, 1, 5 << 4, 0x10, 65535, 0, 0)
    tcp = tcp[:16] + struct.pack("!H", csum(saddr + daddr + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, saddr, daddr)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    frames.append(mac(dst_mac) + mac(src_mac) + b"\x08\x00" + ip + tcp)

s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
send = s.send
sent = 0
end = time.time() + seconds
while time.time() < end:
    for f in frames:
        try:
            send(f)
        except BlockingIOError:
            pass
    sent += len(frames)
print(sent)
