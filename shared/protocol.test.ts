// The version handshake both sides rely on: a node admits exactly the protocol version the edge stamps
// on its requests (PROTOCOL_VERSION), and refuses any other as protocol_mismatch, which the edge
// reports instead of streaming from a node that would read the request differently.
import { expect, it } from 'vitest';
import { checkGenerateRequest } from '../gpu-nodes/src/engine/admission.ts';
import { PROTOCOL_VERSION, type GenerateRequest } from './protocol.ts';

const limits = { modelId: 'k2-tiny', vocabSize: 1000, maxModelLen: 4096, kvCapacityTokens: 8192 };
const request: GenerateRequest = {
  version: PROTOCOL_VERSION,
  request_id: 'req_1',
  model: 'k2-tiny',
  prompt_token_ids: [1, 2, 3],
  sampling: { max_tokens: 4, temperature: 0, top_p: 1, stop_token_ids: [], stop: [] },
  cache_salt: 'org_1',
};

it('a node admits a request of this protocol version', () => {
  expect(() => checkGenerateRequest(request, limits)).not.toThrow();
});

it('a node refuses any other protocol version as protocol_mismatch (400)', () => {
  for (const version of [0, PROTOCOL_VERSION + 1, '1', undefined]) {
    const other = { ...request, version } as unknown as GenerateRequest;
    expect(() => checkGenerateRequest(other, limits)).toThrow(expect.objectContaining({ code: 'protocol_mismatch', status: 400 }));
  }
});
