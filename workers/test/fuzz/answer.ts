/**
 * What a fuzz test got back: the status, the body as JSON when it parses (else as text, so a failed
 * assertion shows what came back), and the content type.
 */
export interface Answer {
  status: number;
  body: unknown;
  contentType: string;
}

export async function readAnswer(res: Response): Promise<Answer> {
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Left as text.
  }
  return { status: res.status, body, contentType: res.headers.get('content-type') ?? '' };
}
