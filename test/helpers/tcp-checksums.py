# Captures incoming TCP segments to a port on an interface and checks their
# IPv4 header and TCP checksums, the way a NIC or the far end would: argv =
# interface, port, the source port of the last segment to check, timeout in seconds,
# the DSCP every segment must carry. A segment the
# kernel marks CHECKSUM_PARTIAL (TP_STATUS_CSUMNOTREADY: an offload finishes
# it later) must carry the pseudo-header sum in its checksum field instead.
# Prints one JSON line: {"full_ok", "partial_ok", "bad": [descriptions]}.
import json, socket, struct, sys, time

SOL_PACKET, PACKET_AUXDATA = 263, 8
TP_STATUS_CSUMNOTREADY = 1 << 3
PACKET_OUTGOING = 4

def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s

def sum16(b):
    if len(b) % 2:
        b += b"\0"
    return sum(struct.unpack("!%dH" % (len(b) // 2), b))

ifname, port, last, timeout, dscp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((ifname, 0))
s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
s.settimeout(0.2)
print("ready", flush=True)
full_ok = partial_ok = 0
bad = []
deadline = time.time() + timeout
done = False
while not done and time.time() < deadline:
    try:
        data, anc, _, addr = s.recvmsg(70000, socket.CMSG_SPACE(20))
    except socket.timeout:
        continue
    if addr[2] == PACKET_OUTGOING:
        continue
    status = 0
    for level, kind, cdata in anc:
        if level == SOL_PACKET and kind == PACKET_AUXDATA:
            status = struct.unpack("I", cdata[:4])[0]
    ip = data[14:]
    if len(ip) < 20 or ip[9] != 6:
        continue
    ihl = (ip[0] & 15) * 4
    tot = struct.unpack("!H", ip[2:4])[0]
    tcp = ip[ihl:tot]
    if len(tcp) < 20 or struct.unpack("!H", tcp[2:4])[0] != port:
        continue
    done = struct.unpack("!H", tcp[0:2])[0] == last
    what = "%s:%d dscp %d" % (socket.inet_ntoa(ip[12:16]), struct.unpack("!H", tcp[0:2])[0], ip[1] >> 2)
    if ip[1] >> 2 != dscp:
        bad.append("wrong DSCP: " + what)
        continue
    if fold(sum16(ip[:ihl])) != 0xFFFF:
        bad.append("ip header checksum wrong: " + what)
        continue
    pseudo = sum16(ip[12:20]) + 6
    field = struct.unpack("!H", tcp[16:18])[0]
    if status & TP_STATUS_CSUMNOTREADY:
        # The field holds the pseudo-header sum (length of this segment, or 0 for GSO).
        if field in (fold(pseudo + len(tcp)), fold(pseudo)):
            partial_ok += 1
        else:
            bad.append("partial checksum field 0x%04x is not the pseudo-header sum: %s" % (field, what))
    elif fold(pseudo + len(tcp) + sum16(tcp)) == 0xFFFF:
        full_ok += 1
    else:
        bad.append("tcp checksum wrong: " + what)
print(json.dumps({"full_ok": full_ok, "partial_ok": partial_ok, "bad": bad}), flush=True)
