/**
 * Objects a builder made in the inventory's key order (render-json.ts), so that rendering a record
 * need not walk them to check. Walking every record's keys was an eighth of a warm 100,000-file scan
 * (issue 11). A builder marks only what its own code lays out key by key, and a unit test checks
 * each such builder against the order (test/unit/report/in-order.test.ts). A marked object must
 * not gain keys afterwards.
 */
const marked = new WeakSet<object>();

/** `value`, remembered as already in the report's key order. */
export function markInOrder<T extends object>(value: T): T {
  marked.add(value);
  return value;
}

/** Whether a builder marked `value` as already in the report's key order. */
export function isMarkedInOrder(value: object): boolean {
  return marked.has(value);
}
