/** The node's error answer before any stream byte: `NodeErrorBody` with our protocol header (shared/protocol.ts). */
import type { NodeErrorBody, NodeErrorCode } from '../../shared/protocol.ts';
import { PROTOCOL_HEADER, PROTOCOL_VERSION } from '../../shared/protocol.ts';

export function nodeErrorResponse(code: NodeErrorCode, status: number, message: string, headers: Record<string, string> = {}, param?: string): Response {
  const body: NodeErrorBody = { error: { code, message, ...(param !== undefined ? { param } : {}) } };
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', [PROTOCOL_HEADER]: String(PROTOCOL_VERSION), ...headers },
  });
}
