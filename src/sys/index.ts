// What the layers above src/sys/ may use: plain functions over numbers, Buffers and typed arrays.
export * from './constants.js';
export * from './errors.js';
export * from './sockaddr.js';
export { EventBuffer, EPOLL_EVENT_SIZE, epollAdd, epollCreate } from './epoll.js';
export {
  accept4,
  bufferAddress,
  close,
  connect,
  epollWait,
  epollWaitFine,
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
  setLingerZero,
  shutdown,
  sockError,
  socket,
  splice,
  write,
} from './libc.js';
export * from './setup.js';
export {
  type ContextSpec,
  clientContext,
  contextFree,
  lastSslCode,
  onServerName,
  serverContext,
  setTicketKeys,
  sslAccepting,
  sslConnecting,
  sslAcceptingAfter,
  sslPrefixSpent,
  sslFree,
  sslHandshake,
  sslRead,
  sslReadBuffer,
  sslReason,
  sslResumed,
  sslShutdown,
  sslWrite,
  sslWriteBuffer,
} from './ssl.js';
export { OpenSslError, type PemPair, type SelfSignedSpec, selfSignedCertificate } from './x509.js';
