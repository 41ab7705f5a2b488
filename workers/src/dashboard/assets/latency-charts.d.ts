// latency-charts.js is a browser script, imported by the worker as text (wrangler.toml [[rules]] type "Text").
declare const text: string;
export default text;
