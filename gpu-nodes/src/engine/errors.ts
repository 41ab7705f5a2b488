/**
 * Why the engine refused a request before streaming anything. The server maps `status` and `code` to
 * the protocol's HTTP error (`NodeErrorBody`); `retryAfterS` becomes the 429's Retry-After header.
 */
import type { NodeErrorCode } from '../../../shared/protocol.ts';

export class EngineError extends Error {
  override readonly name = 'EngineError';
  readonly code: NodeErrorCode;
  readonly status: 400 | 404 | 413 | 429 | 503;
  readonly retryAfterS: number | undefined;
  /** The request field at fault (OpenAI's `param`), when one is. */
  readonly param: string | undefined;

  constructor(code: NodeErrorCode, status: EngineError['status'], message: string, retryAfterS?: number, param?: string) {
    super(message);
    this.code = code;
    this.status = status;
    this.retryAfterS = retryAfterS;
    this.param = param;
  }
}

/** Why one request's token could not be produced in a step; the engine fails that request alone. */
export class SequenceFailure {
  readonly message: string;
  constructor(message: string) {
    this.message = message;
  }
}
