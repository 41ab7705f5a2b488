/**
 * The prompt as the edge counts it for a request served through backends: token ids (what a pool
 * node runs, and what credit is reserved for) and the max_tokens every backend is held to.
 *
 * A model whose vocabulary this edge bundles is counted exactly. One it does not (the K2-class
 * models, the very reason upstream engines exist) is counted with k2-tiny's cl100k ranks: close
 * enough to reserve credit and to estimate usage an upstream omits (such a usage row is marked estimated).
 */
import { continuesFinalMessage, k2TinyTokenizer, renderChat } from '../../../shared/tokenizer/index.ts';
import type { Tokenizer } from '../../../shared/tokenizer/bpe.ts';
import type { ApiFormat } from '../formats/api-format.ts';
import type { ModelTarget } from '../inference/generation.ts';
import { ContextLengthError, UpstreamUnavailableError } from '../errors.ts';
import { edgeTokenizer } from '../inference/tokenizers.ts';
import type { ChatCompletionRequest, CompletionRequest } from '../schemas/openai.ts';

export type UpstreamRequest =
  /** `format`: a translated API (Anthropic Messages, OpenAI Responses) whose body became this chat body; it renders the answer. */
  | { endpoint: 'chat.completions'; body: ChatCompletionRequest; format?: ApiFormat }
  | { endpoint: 'completions'; body: CompletionRequest };

/** OpenAI's default for the legacy endpoint, as routes/completions.ts applies it. */
const DEFAULT_COMPLETION_MAX_TOKENS = 16;

export interface CountedPrompt {
  promptTokenIds: number[];
  /** min(requested, room left in the context); without a request, all of the room (chat). */
  maxTokens: number;
  tokenizer: Tokenizer;
  /** False when `tokenizer` is only the cl100k approximation: our pool nodes cannot serve the model then. */
  exact: boolean;
}

/**
 * Counts the prompt of `req` for `target`. A model served only by our pool (no configured backends)
 * needs this edge's exact vocabulary: without it the answer is a 503 before anything is admitted.
 */
export function countPrompt(target: Pick<ModelTarget, 'model' | 'backends'>, req: UpstreamRequest): CountedPrompt {
  const { model } = target;
  let bundled: { tokenizer: Tokenizer; thinking: boolean } | null = null;
  try {
    bundled = edgeTokenizer(model);
  } catch (err) {
    if (!(err instanceof UpstreamUnavailableError) || target.backends.length === 0) throw err;
  }
  const tokenizer = bundled?.tokenizer ?? k2TinyTokenizer();
  let promptTokenIds: number[];
  let requested: number | null;
  if (req.endpoint === 'chat.completions') {
    const tools = req.body.tool_choice === 'none' ? undefined : req.body.tools;
    const continueFinalMessage = continuesFinalMessage(req.body.messages, req.body.continue_final_message);
    promptTokenIds = renderChat(tokenizer, req.body.messages, { tools, thinking: bundled?.thinking ?? false, continueFinalMessage });
    requested = req.body.max_completion_tokens ?? req.body.max_tokens ?? null;
  } else {
    const prompt = typeof req.body.prompt === 'string' ? req.body.prompt : req.body.prompt[0];
    // allowSpecial false: a prompt that spells "<|im_end|>" gets ordinary tokens, not the marker.
    promptTokenIds = tokenizer.encode(prompt, { allowSpecial: false });
    requested = req.body.max_tokens ?? DEFAULT_COMPLETION_MAX_TOKENS;
  }
  const room = model.contextLength - promptTokenIds.length;
  if (room <= 0) throw new ContextLengthError(promptTokenIds.length, model.contextLength);
  return { promptTokenIds, maxTokens: Math.min(requested ?? room, room), tokenizer, exact: bundled !== null };
}
