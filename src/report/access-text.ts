/**
 * Early access, paid access and licences in words, the same in every format. Pure. Days are
 * counted from the inventory's own date (`generatedAt`), not from the day a report is rendered,
 * so a report of the same inventory is always the same text.
 */
import type { LicenseFlags } from "./record-types.ts";
import type { AccessInfo } from "./updates.ts";

const DAY_MS = 86_400_000;

/** Whole days from `now` until `endsAt` (rounded up, never below 0); null when there is no usable date. */
export function daysLeft(endsAt: string | null | undefined, now: number): number | null {
  if (typeof endsAt !== "string" || !Number.isFinite(now)) return null;
  const t = Date.parse(endsAt);
  return Number.isFinite(t) ? Math.max(0, Math.ceil((t - now) / DAY_MS)) : null;
}

/** The date part of an ISO 8601 time, or the text as it is when it is not one. */
export function dateOnly(value: string): string {
  return /^\d{4}-\d{2}-\d{2}T/.test(value) ? value.slice(0, 10) : value;
}

/** "early access until 2026-05-01 (3 days left)", "paid access (permanent)", …; null: free to download. */
export function accessText(access: AccessInfo | null | undefined, now: number): string | null {
  if (!access) return null;
  const what = access.kind === "paid" ? "paid access" : "early access";
  if (access.permanent) return `${what} (permanent)`;
  if (access.endsAt === null) return what;
  const days = daysLeft(access.endsAt, now);
  const left = days === null ? "" : ` (${days === 1 ? "1 day" : `${days} days`} left)`;
  return `${what} until ${dateOnly(access.endsAt)}${left}`;
}

/**
 * The licence in a few words, as the uploader declared it: the commercial uses allowed, then the
 * restrictions (credit, derivatives, relicensing). Null when the model's details were not fetched.
 */
export function licenseText(license: LicenseFlags | null | undefined): string | null {
  if (!license) return null;
  const parts: string[] = [];
  const uses = Array.isArray(license.allowCommercialUse) ? license.allowCommercialUse : [];
  parts.push(uses.length > 0 ? `commercial: ${uses.join(", ")}` : "no commercial use");
  if (license.allowNoCredit === false) parts.push("credit required");
  if (license.allowDerivatives === false) parts.push("no derivatives");
  if (license.allowDifferentLicense === false) parts.push("same licence for derivatives");
  return parts.join("; ");
}
