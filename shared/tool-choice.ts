/**
 * OpenAI's `tool_choice` and `parallel_tool_calls` → the constraint a node enforces on K2's tool-call
 * output (protocol.ts `ToolCallConstraint`), for the edge and the node's own OpenAI endpoint alike.
 * "auto" with parallel calls allowed asks for nothing (undefined); "none" drops the tools altogether.
 */
import type { ToolCallConstraint } from './protocol.ts';

interface OpenAITool {
  type?: unknown;
  function?: { name?: unknown; parameters?: unknown };
}

/** The constraint, or why the combination cannot be served (a 400 naming `tool_choice`). */
export function toolCallConstraint(tools: unknown, toolChoice: unknown, parallelToolCalls: unknown): { constraint?: ToolCallConstraint; error?: string } {
  const parallel = parallelToolCalls !== false;
  if (toolChoice === 'none') return {};
  const list = Array.isArray(tools) ? (tools as OpenAITool[]) : [];
  const functions = list.map((t) => ({
    name: String(t.function?.name ?? ''),
    ...(t.function?.parameters !== undefined && t.function.parameters !== null ? { parameters: t.function.parameters as Record<string, unknown> } : {}),
  }));
  if (toolChoice === undefined || toolChoice === null || toolChoice === 'auto') {
    return parallel || functions.length === 0 ? {} : { constraint: { functions, required: false, parallel: false } };
  }
  if (functions.length === 0) return { error: 'tool_choice requires tools: send the functions the model may call' };
  if (toolChoice === 'required') return { constraint: { functions, required: true, parallel } };
  const named = (toolChoice as { function?: { name?: unknown } })?.function?.name;
  if (typeof named === 'string') {
    const fn = functions.find((f) => f.name === named);
    if (!fn) return { error: `tool_choice names '${named}', which is not one of tools` };
    return { constraint: { functions: [fn], required: true, parallel } };
  }
  return { error: "tool_choice must be 'none', 'auto', 'required' or {type: 'function', function: {name}}" };
}
