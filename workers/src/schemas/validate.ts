import { zValidator } from '@hono/zod-validator';
import type { ZodType } from 'zod';
import { InvalidRequestError } from '../errors.ts';

/**
 * `zValidator('json', schema)` whose failure is our OpenAI-shaped 400: the first issue becomes the
 * message and its path the `param`, so clients see which field to fix.
 *
 * @example
 * chat.post('/', jsonBody(chatCompletionRequest), (c) => c.req.valid('json'))
 */
export function jsonBody<T extends ZodType>(schema: T) {
  return zValidator('json', schema, (result) => {
    if (result.success) return;
    const issue = result.error.issues[0];
    // A strict object's unknown field: name the field itself, so the client sees what to remove.
    if (issue.code === 'unrecognized_keys') {
      const param = [...issue.path, issue.keys[0]].join('.');
      throw new InvalidRequestError(`'${param}' is not a supported parameter; remove it`, param, 'unsupported_parameter');
    }
    const param = issue.path.length ? issue.path.join('.') : null;
    throw new InvalidRequestError(param ? `${param}: ${issue.message}` : issue.message, param);
  });
}
