// Questions about a connected socket that Node's net API cannot answer.
#pragma once

namespace switchyard {

// Whether the peer of a connected stream socket has shut down its sending
// side or reset the connection, without reading from it and without waiting.
// A socket whose reading is paused otherwise learns this only once it reads.
bool SocketPeerClosed(int fd);

}  // namespace switchyard
