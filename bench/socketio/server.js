// The Socket.IO side of realtime-gateway's fan-out benchmark: the smallest server that does
// what the ecosystem's front ends use Socket.IO for today. A client joins a room with
// `subscribe`; a `publish` event from the publisher is emitted to everyone in the room.
// Prints {"port": N} once listening on 127.0.0.1.
const { createServer } = require('node:http');
const { Server } = require('socket.io');

const http = createServer();
const io = new Server(http, { transports: ['websocket'], serveClient: false });

io.on('connection', (socket) => {
  socket.on('subscribe', (room) => socket.join(room));
  socket.on('publish', (message) => io.to(message.channel).emit('pub', message));
});

http.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ port: http.address().port }));
});
