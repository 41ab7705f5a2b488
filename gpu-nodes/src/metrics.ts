/**
 * `GET /metrics`: the node in Prometheus text format, through prom-client. Names follow vLLM's
 * (`vllm:*`) wherever vLLM has the same quantity, so dashboards built for vLLM work unchanged; our
 * own figures are `k2node_*`.
 *
 * Gauges and the engine's own counters are read from the engine at scrape time (nothing to keep in
 * sync). When the engine runs on its own thread (engine-thread/) that read is the snapshot it posted
 * with its latest events, so a scrape never waits for a step. The other counters and histograms are
 * fed on the HTTP thread by `observe()`, which wraps each request's event sink: `start` → prompt and
 * prefix-cache tokens, each `tokens` → generated tokens and the first-token / inter-token latency,
 * the terminal event → end-to-end latency and the finish reason.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { NodeEvent } from '../../shared/protocol.ts';
import type { EngineStats, EventSink } from './engine/engine.ts';
import type { EngineHandle } from './engine-thread/engine-handle.ts';

// vLLM's bucket edges (vllm/engine/metrics.py), in seconds, so histograms line up with theirs.
const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
const ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const E2E_BUCKETS = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];

export class NodeMetrics {
  readonly registry = new Registry();
  private engine: EngineHandle | undefined;
  private draining = false;

  private readonly promptTokens: Counter<'model_name'>;
  private readonly generationTokens: Counter<'model_name'>;
  private readonly prefixQueries: Counter<'model_name'>;
  private readonly prefixHits: Counter<'model_name'>;
  private readonly requestSuccess: Counter<'model_name' | 'finished_reason'>;
  private readonly ttft: Histogram<'model_name'>;
  private readonly itl: Histogram<'model_name'>;
  private readonly e2e: Histogram<'model_name'>;
  private readonly loadSeconds: Gauge;
  private readonly backend: Gauge<'backend'>;

  constructor() {
    const registers = [this.registry];
    const labelNames = ['model_name'] as const;
    // Read at scrape time: the scheduler and KV pool are the source of truth.
    const fromLoad = (name: string, help: string, pick: (l: ReturnType<EngineHandle['load']>) => number) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect: () => {
          const g = this.registry.getSingleMetric(name) as Gauge<'model_name'>;
          g.reset();
          if (this.engine) g.set({ model_name: this.engine.options.modelId }, pick(this.engine.load()));
        },
      });
    fromLoad('vllm:num_requests_running', 'Requests in the running batch.', (l) => l.running);
    fromLoad('vllm:num_requests_waiting', 'Requests waiting to be scheduled.', (l) => l.queue_depth);
    fromLoad('vllm:kv_cache_usage_perc', 'KV-cache usage; 1 means 100 percent.', (l) => (l.kv_blocks_total === 0 ? 0 : 1 - l.kv_blocks_free / l.kv_blocks_total));
    // Counted inside the engine (on its thread when it has one); mirrored here at scrape time.
    const fromStats = (name: string, help: string, pick: (s: EngineStats) => number) =>
      new Counter({
        name,
        help,
        labelNames,
        registers,
        collect: () => {
          const c = this.registry.getSingleMetric(name) as Counter<'model_name'>;
          c.reset();
          if (this.engine) c.inc({ model_name: this.engine.options.modelId }, pick(this.engine.stats));
        },
      });
    fromStats('vllm:num_preemptions_total', 'Requests preempted (their KV freed, to be recomputed).', (s) => s.preemptions);
    fromStats('k2node_engine_steps_total', 'Engine steps run (one forward pass over the batch each).', (s) => s.steps);
    fromStats('k2node_engine_execute_seconds_total', 'Seconds spent inside the model runner (forward and sampling).', (s) => s.executeMs / 1000);
    this.promptTokens = new Counter({ name: 'vllm:prompt_tokens_total', help: 'Prefill tokens processed (including prefix-cache hits).', labelNames, registers });
    this.generationTokens = new Counter({ name: 'vllm:generation_tokens_total', help: 'Generation tokens produced and streamed.', labelNames, registers });
    this.prefixQueries = new Counter({ name: 'vllm:prefix_cache_queries', help: 'Prompt tokens looked up in the prefix cache.', labelNames, registers });
    this.prefixHits = new Counter({ name: 'vllm:prefix_cache_hits', help: 'Prompt tokens found in the prefix cache.', labelNames, registers });
    this.requestSuccess = new Counter({ name: 'vllm:request_success_total', help: 'Finished requests by finish reason.', labelNames: ['model_name', 'finished_reason'], registers });
    this.ttft = new Histogram({ name: 'vllm:time_to_first_token_seconds', help: 'Time from admission to the first generated token.', labelNames, buckets: TTFT_BUCKETS, registers });
    this.itl = new Histogram({ name: 'vllm:inter_token_latency_seconds', help: 'Time between consecutive token events, per token.', labelNames, buckets: ITL_BUCKETS, registers });
    this.e2e = new Histogram({ name: 'vllm:e2e_request_latency_seconds', help: 'Time from admission to the terminal event.', labelNames, buckets: E2E_BUCKETS, registers });
    this.loadSeconds = new Gauge({ name: 'k2node_model_load_seconds', help: 'Seconds the model took to load at start-up.', registers });
    this.backend = new Gauge({ name: 'k2node_kernel_backend_info', help: 'The kernel backend in use (value 1, name in the label).', labelNames: ['backend'], registers });
    new Gauge({
      name: 'k2node_draining',
      help: '1 while the node finishes in-flight requests before exiting.',
      registers,
      collect: () => (this.registry.getSingleMetric('k2node_draining') as Gauge).set(this.draining ? 1 : 0),
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'k2node_process_' });
  }

  /** The model is in: gauges now read from this engine. */
  loaded(engine: EngineHandle, backend: string, loadSeconds: number): void {
    this.engine = engine;
    this.backend.set({ backend }, 1);
    this.loadSeconds.set(loadSeconds);
    // Series exist from the first scrape at 0, as vLLM's do: rate() then sees the counter start at
    // zero instead of appearing mid-window at its first value (which it would extrapolate from).
    const labels = { model_name: engine.options.modelId };
    for (const c of [this.promptTokens, this.generationTokens, this.prefixQueries, this.prefixHits]) c.inc(labels, 0);
    for (const h of [this.ttft, this.itl, this.e2e]) h.zero(labels);
  }

  setDraining(draining: boolean): void {
    this.draining = draining;
  }

  /** Wraps one request's sink so its events also feed the counters and histograms. */
  observe(model: string, sink: EventSink): EventSink {
    const labels = { model_name: model };
    const started = performance.now();
    let last: number | undefined;
    return (event: NodeEvent) => {
      const now = performance.now();
      switch (event.type) {
        case 'start':
          this.promptTokens.inc(labels, event.prompt_tokens);
          this.prefixQueries.inc(labels, event.prompt_tokens);
          this.prefixHits.inc(labels, event.cached_tokens);
          break;
        case 'tokens': {
          const n = event.token_ids.length;
          this.generationTokens.inc(labels, n);
          if (last === undefined) this.ttft.observe(labels, (now - started) / 1000);
          // A batch of n tokens in one event is n inter-token gaps of equal share.
          else for (let i = 0; i < n; i++) this.itl.observe(labels, (now - last) / 1000 / n);
          last = now;
          break;
        }
        case 'finish':
        case 'error':
          this.e2e.observe(labels, (now - started) / 1000);
          this.requestSuccess.inc({ ...labels, finished_reason: event.type === 'error' ? 'error' : event.finish_reason });
          break;
      }
      sink(event);
    };
  }

  /** Every submit through this engine is observed (the token-batch route and the OpenAI routes alike). */
  instrument(engine: EngineHandle): void {
    const submit = engine.submit.bind(engine);
    engine.submit = (body, sink) => submit(body, this.observe(body.model, sink));
  }
}
