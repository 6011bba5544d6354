// What the layers above src/sys/ may use: plain functions over numbers, Buffers and typed arrays.
export * from './constants.js';
export * from './errors.js';
export * from './sockaddr.js';
export { EventBuffer, EPOLL_EVENT_SIZE, epollAdd, epollCreate, epollDel } from './epoll.js';
export {
  accept4,
  bufferAddress,
  close,
  connect,
  epollWait,
  errnoName,
  getpid,
  lowMemory,
  pageSize,
  read,
  recv,
  recvAt,
  releaseLowMemory,
  releasePages,
  send,
  sendAt,
  setIntOpt,
  setIovec,
  setLingerZero,
  shutdown,
  sockError,
  socket,
  splice,
  write,
  writev,
} from './libc.js';
export * from './setup.js';
