// A refusal with its SMTP reply: code, enhanced status code (RFC 3463) and a reason a
// person understands. Policy and intake throw these; the submission server sends them.
export class Rejection extends Error {
  readonly responseCode: number;
  constructor(code: number, readonly enhancedCode: string, readonly reason: string) {
    // smtp-server sends err.message after the code; the enhanced code leads the text so
    // submission/reply-codes.ts keeps it instead of a generic one.
    super(`${enhancedCode} ${reason}`);
    this.responseCode = code;
  }
}
