import type { NodeEvent } from './protocol.ts';

/**
 * The node's NDJSON body as events. Not an async generator: a read must end quietly when we close
 * the stream ourselves (client gone), and a generator suspended in a read cannot be told that.
 */
export class NodeEventReader {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private buffered = '';
  private closed = false;
  /** An event read by awaitFirst, handed out by the next next(). */
  private peeked: { event: NodeEvent | undefined } | undefined;

  constructor(body: ReadableStream<Uint8Array>) {
    this.reader = body.getReader();
  }

  /**
   * Reads the first event (the node sends `start` when it schedules the request) and keeps it for
   * next(). Rejects when the body breaks or is not NDJSON.
   */
  async awaitFirst(): Promise<void> {
    this.peeked = { event: await this.next() };
  }

  /** The next event, or undefined at the end of the body (or after close()). */
  async next(): Promise<NodeEvent | undefined> {
    if (this.peeked) {
      const { event } = this.peeked;
      this.peeked = undefined;
      return event;
    }
    for (;;) {
      const newline = this.buffered.indexOf('\n');
      if (newline >= 0) {
        const line = this.buffered.slice(0, newline).trim();
        this.buffered = this.buffered.slice(newline + 1);
        if (line) return JSON.parse(line) as NodeEvent;
        continue;
      }
      if (this.closed) return undefined;
      const chunk = await this.reader.read().catch((err: unknown) => {
        if (this.closed) return { done: true as const, value: undefined };
        throw err;
      });
      if (chunk.done) {
        this.closed = true;
        // A last line without its newline is still an event; a torn one fails JSON.parse loudly.
        const rest = (this.buffered + this.decoder.decode()).trim();
        this.buffered = '';
        return rest ? (JSON.parse(rest) as NodeEvent) : undefined;
      }
      this.buffered += this.decoder.decode(chunk.value, { stream: true });
    }
  }

  /**
   * Stop delivering events. The body is deliberately not cancelled here: cancelling a reader with a
   * read in flight makes workerd reject an internal promise nobody can handle. The node is stopped
   * by POST /v1/cancel instead, and workerd drops the connection when the request context ends.
   */
  close(): void {
    this.closed = true;
  }
}
