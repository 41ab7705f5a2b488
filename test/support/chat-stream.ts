/**
 * A client's view of a streamed chat completion: its SSE data payloads and how many carried content
 * (each content chunk carries at least one token, so the count is a lower bound on tokens received).
 */
import { SseReader } from '../../workers/src/upstreams/sse.ts';

export function isContentChunk(data: string): boolean {
  if (data === '[DONE]') return false;
  const chunk = JSON.parse(data) as { choices?: { delta?: { content?: string } }[] };
  return Boolean(chunk.choices?.[0]?.delta?.content);
}

export class ChatStream {
  readonly events: string[] = [];
  content = 0;
  readonly #sse: SseReader;

  constructor(res: Response) {
    this.#sse = new SseReader(res.body!);
  }

  /** Reads until `n` content chunks in all have arrived; throws if the stream ends first. */
  async readContent(n: number): Promise<void> {
    while (this.content < n) {
      if ((await this.next()) === undefined) throw new Error(`stream ended after ${this.content} of ${n} content chunks`);
    }
  }

  /** Reads every remaining event. */
  async readToEnd(): Promise<void> {
    while ((await this.next()) !== undefined);
  }

  /** The next event's data (recorded and counted), or undefined at the end. */
  async next(): Promise<string | undefined> {
    const data = await this.#sse.next();
    if (data === undefined) return undefined;
    this.events.push(data);
    if (isContentChunk(data)) this.content++;
    return data;
  }
}
