/** zod schema for the backend admin API (routes/backends.ts). */
import { z } from 'zod';

const common = {
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, ".", "-" and "_", at most 64'),
  /** Lower is tried first. */
  priority: z.number().int().min(0).max(1000).optional(),
  /** Share of first attempts among backends with the same priority. */
  weight: z.number().int().min(0).max(1000).optional(),
};

export const createBackend = z.discriminatedUnion('kind', [
  z.object({ ...common, kind: z.literal('pool'), pool: z.string().min(1) }),
  z.object({
    ...common,
    kind: z.literal('openai'),
    /** Up to and including the version prefix, e.g. "https://api.example.com/v1". */
    base_url: z.url({ protocol: /^https?$/ }),
    /** Name of the Worker secret holding the API key (`wrangler secret put NAME`); omit for none. */
    api_key_secret: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'an upper-case Worker secret name').optional(),
    upstream_model: z.string().min(1),
    timeout_ms: z.number().int().min(100).max(600_000).optional(),
    /** false for engines that reject stream_options; usage is then estimated by the edge. */
    stream_usage: z.boolean().optional(),
  }),
]);
