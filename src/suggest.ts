/** "Did you mean": the nearest of a few known names to a mistyped one. */

/** Edit distance with transpositions (optimal string alignment): "pussh"→"push" 1, "pshu"→"push" 1. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate nearest to `input`, if it is near enough to be a typo (one edit in a name of up to three
 * letters, else two or a third of its length) or `input` is a prefix of exactly one candidate.
 */
export function nearest(input: string, candidates: Iterable<string>): string | null {
  const lower = input.toLowerCase();
  let best: string | null = null;
  let bestDistance = Infinity;
  const prefixed: string[] = [];
  for (const c of candidates) {
    if (c === input) continue;
    if (lower.length >= 2 && c.toLowerCase().startsWith(lower)) prefixed.push(c);
    const dist = editDistance(lower, c.toLowerCase());
    if (dist < bestDistance) [best, bestDistance] = [c, dist];
  }
  const allowed = input.length <= 3 ? 1 : Math.max(2, Math.floor(input.length / 3));
  if (best !== null && bestDistance <= allowed) return best;
  return prefixed.length === 1 ? prefixed[0]! : null;
}

/** `; did you mean "X"?` or nothing. */
export function didYouMean(input: string, candidates: Iterable<string>, quote = (s: string) => JSON.stringify(s)): string {
  const n = nearest(input, candidates);
  return n === null ? "" : `; did you mean ${quote(n)}?`;
}
