/**
 * Reads a server-sent-events body as its `data` payloads (one string per event, multi-line data
 * joined with "\n", "[DONE]" included as is). Comments (": keep-alive") and other fields are skipped.
 * Like node-client's reader it is a class, not an async generator, so `close()` can end it quietly.
 */
export class SseReader {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private buffered = '';
  private ended = false;
  private closed = false;

  constructor(body: ReadableStream<Uint8Array>) {
    this.reader = body.getReader();
  }

  /** The next event's data, or undefined at the end of the body. */
  async next(): Promise<string | undefined> {
    for (;;) {
      const event = this.takeEvent();
      if (event !== undefined) return event;
      if (this.ended || this.closed) return undefined;
      let chunk: Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']>>;
      try {
        chunk = await this.reader.read();
      } catch (err) {
        if (this.closed) return undefined;
        throw err;
      }
      if (chunk.done) {
        this.ended = true;
        // An event not followed by a blank line still counts when the body ends.
        this.buffered += this.decoder.decode() + '\n\n';
      } else {
        this.buffered += this.decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, '\n');
      }
    }
  }

  /** Stop reading (the caller aborts the fetch itself). */
  close(): void {
    this.closed = true;
  }

  private takeEvent(): string | undefined {
    for (;;) {
      const end = this.buffered.indexOf('\n\n');
      if (end < 0) return undefined;
      const block = this.buffered.slice(0, end);
      this.buffered = this.buffered.slice(end + 2);
      const data = block
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(line[5] === ' ' ? 6 : 5));
      if (data.length > 0) return data.join('\n');
    }
  }
}
