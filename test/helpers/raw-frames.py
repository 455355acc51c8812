# Sends Ethernet frames given as hex lines on stdin out of an interface
# (AF_PACKET, no offloads: the bytes go as written). Used by the DSR tests to
# put malformed frames on the wire: argv[1] = interface.
import socket, sys

s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
sent = 0
for line in sys.stdin:
    line = line.strip()
    if line:
        s.send(bytes.fromhex(line))
        sent += 1
print(sent)
