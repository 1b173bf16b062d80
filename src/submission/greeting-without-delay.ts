// smtp-server waits a fixed 100 ms before its 220 greeting, to catch spam bots that talk
// before being greeted. The relay's clients are its own users' servers and apps, not the
// open internet, and the wait caps a client that opens one connection per message at 10
// messages per second (measured: 9.3 msg/s with one session, bench/RESULTS.md). This shim
// greets at once; everything else of smtp-server's start of a connection (the client limit,
// the 421 when it is reached, now with 4.7.0 and the setting) is kept as it is. Installed
// once, at module load.
import { SMTPConnection } from 'smtp-server/lib/smtp-connection';

interface ConnectionInternals {
  _setListeners(done: () => void): void;
  _server: { options: { maxClients?: number }; connections: Set<unknown> };
  name: string;
  send(code: number, text: string, context?: string | false): void;
  connectionReady(): void;
}

const proto = SMTPConnection.prototype as unknown as ConnectionInternals & { init(): void; __dkimRelayNoGreetingDelay?: boolean };

if (!proto.__dkimRelayNoGreetingDelay) {
  proto.init = function init(this: ConnectionInternals) {
    this._setListeners(() => {
      const { maxClients } = this._server.options;
      if (maxClients && this._server.connections.size > maxClients) {
        // with an enhanced code and the setting (submission/reply-codes.ts keeps the code)
        return this.send(421, `4.7.0 ${this.name} Too many connected clients: submission.maxClients (RELAY_MAX_CLIENTS) are open; try again in a moment`, false);
      }
      this.connectionReady();
    });
  };
  proto.__dkimRelayNoGreetingDelay = true;
}
