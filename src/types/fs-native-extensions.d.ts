// Types for the part of fs-native-extensions (holepunch) that dkim-relay uses: the lock of an
// open file description (on Linux fcntl F_OFD_SETLK on the whole file). src/spool/spool-lock.ts
// is the only user.
declare module 'fs-native-extensions' {
  /** Takes the lock without waiting: true when taken, false when another open file holds it (EAGAIN). */
  export function tryLock(fd: number, options?: { shared?: boolean }): boolean;
  export function unlock(fd: number): void;
}
