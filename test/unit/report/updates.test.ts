import { describe, expect, test } from "bun:test";
import { accessOf, compareNewer, findUpdate, updateToFetch, type OwnVersion, type VersionSummary } from "../../../src/report/updates.ts";
import { accessText, daysLeft, licenseText } from "../../../src/report/access-text.ts";

const NOW = Date.parse("2026-05-01T00:00:00Z");

function v(id: number, over: Partial<VersionSummary> = {}): VersionSummary {
  return {
    id,
    name: `v${id}`,
    baseModel: "SDXL 1.0",
    index: null,
    status: "Published",
    availability: "Public",
    createdAt: null,
    publishedAt: null,
    earlyAccessDeadline: null,
    earlyAccessEndsAt: null,
    paidAccess: null,
    hasFiles: true,
    ...over,
  };
}

const own = (over: Partial<OwnVersion> = {}): OwnVersion => ({
  modelId: 7,
  versionId: 2,
  baseModel: "SDXL 1.0",
  publishedAt: "2025-02-01T00:00:00Z",
  createdAt: null,
  ...over,
});

describe("findUpdate", () => {
  test("dates, else Civitai's index (0 = latest), decide: the newest for the same base model, and the newest overall apart", () => {
    const versions = [
      v(4, { index: 0, baseModel: "Flux.1 D", publishedAt: "2026-04-01T00:00:00Z" }),
      v(3, { index: 1, publishedAt: "2026-03-01T00:00:00Z" }),
      v(2, { index: 2 }),
      v(1, { index: 3 }),
    ];
    const u = findUpdate(own(), versions, NOW)!;
    expect(u.sameBaseModel).toMatchObject({
      versionId: 3,
      name: "v3",
      baseModel: "SDXL 1.0",
      publishedAt: "2026-03-01T00:00:00Z",
      access: null,
      inLibrary: [],
    });
    expect(u.sameBaseModel!.pageUrl).toBe("https://civitai.com/models/7?modelVersionId=3");
    expect(u.newest).toMatchObject({ versionId: 4, baseModel: "Flux.1 D" });
  });

  test("a newer version only for another base model: no same-base update (the false alarm peers are blamed for)", () => {
    const u = findUpdate(own(), [v(9, { index: 0, baseModel: "SD 1.5" }), v(2, { index: 1 })], NOW)!;
    expect(u.sameBaseModel).toBeNull();
    expect(u.newest.versionId).toBe(9);
    expect(updateToFetch({ update: u })).toBeNull();
  });

  test("no false alarm: an empty list, the file's own version only, older versions only", () => {
    expect(findUpdate(own(), [], NOW)).toBeNull();
    expect(findUpdate(own(), [v(2, { index: 0 })], NOW)).toBeNull();
    expect(findUpdate(own(), [v(2, { index: 0 }), v(1, { index: 1 })], NOW)).toBeNull();
    expect(findUpdate(own({ modelId: null }), [v(5, { index: 0 }), v(2, { index: 1 })], NOW)).toBeNull();
  });

  test("no false alarm: an unordered list is never read by position", () => {
    // Oldest first, no index: dates decide, and the file's version is the newest.
    const list = [
      v(1, { publishedAt: "2024-01-01T00:00:00Z" }),
      v(3, { publishedAt: "2024-06-01T00:00:00Z" }),
      v(2, { publishedAt: "2025-02-01T00:00:00Z" }),
    ];
    expect(findUpdate(own(), list, NOW)).toBeNull();
    // Shuffled with an index: the index decides, wherever the entry sits.
    const shuffled = [v(1, { index: 3 }), v(5, { index: 0 }), v(2, { index: 2 }), v(3, { index: 1 })];
    expect(findUpdate(own(), shuffled, NOW)!.sameBaseModel!.versionId).toBe(5);
  });

  test("a version the creator moved to the top (index 0) is not newer than one published after it", () => {
    // Civitai's index is the order the creator chose (reorderModelVersionsHandler writes the dragged
    // order as index), not chronology: an older "recommended" version pinned first is no update.
    const pinned = [
      v(1, { index: 0, publishedAt: "2024-01-01T00:00:00Z" }),
      v(3, { index: 1, publishedAt: "2026-03-01T00:00:00Z" }),
      v(2, { index: 2, publishedAt: "2025-02-01T00:00:00Z" }),
    ];
    const u = findUpdate(own(), pinned, NOW)!;
    expect(u.sameBaseModel!.versionId).toBe(3);
    expect(u.newest.versionId).toBe(3);
    // The newest file, with an older version pinned first, has nothing newer.
    expect(findUpdate(own({ versionId: 3, publishedAt: "2026-03-01T00:00:00Z" }), pinned, NOW)).toBeNull();
    // Equal dates (published together) say nothing: then the index decides.
    const together = [v(5, { index: 0, publishedAt: "2025-02-01T00:00:00Z" }), v(2, { index: 1, publishedAt: "2025-02-01T00:00:00Z" })];
    expect(findUpdate(own(), together, NOW)!.sameBaseModel!.versionId).toBe(5);
  });

  test("no false alarm: without an index or dates on both sides, nothing is claimed", () => {
    expect(findUpdate(own({ publishedAt: null }), [v(9), v(2)], NOW)).toBeNull();
    // Dates of different kinds are not compared.
    expect(
      findUpdate(own({ publishedAt: null, createdAt: "2025-01-01T00:00:00Z" }), [v(9, { publishedAt: "2026-01-01T00:00:00Z" })], NOW),
    ).toBeNull();
    // An unparsable date is no date.
    expect(findUpdate(own(), [v(9, { publishedAt: "soon" })], NOW)).toBeNull();
    expect(compareNewer({ index: null, publishedAt: null, createdAt: null }, { index: 1, publishedAt: null, createdAt: null })).toBeNull();
  });

  test("versions without files (archived) or not published are never offered", () => {
    expect(findUpdate(own(), [v(9, { index: 0, hasFiles: false }), v(2, { index: 1 })], NOW)).toBeNull();
    expect(findUpdate(own(), [v(9, { index: 0, status: "Draft" }), v(2, { index: 1 })], NOW)).toBeNull();
  });

  test("early access and paid access of the newer version, with their ends", () => {
    const early = v(5, { index: 0, availability: "EarlyAccess", earlyAccessDeadline: "2026-05-04T12:00:00Z" });
    const u = findUpdate(own(), [early, v(2, { index: 1 })], NOW)!;
    expect(u.sameBaseModel!.access).toEqual({ kind: "early_access", endsAt: "2026-05-04T12:00:00Z", permanent: false });
    expect(accessText(u.sameBaseModel!.access, NOW)).toBe("early access until 2026-05-04 (4 days left)");
  });
});

describe("accessOf: what Civitai declares, today's fields and the older one", () => {
  test("earlyAccessDeadline (today), earlyAccessEndsAt (older), a past date is over", () => {
    expect(
      accessOf({ availability: "Public", earlyAccessDeadline: "2026-05-10T00:00:00Z", earlyAccessEndsAt: null, paidAccess: null }, NOW),
    ).toEqual({
      kind: "early_access",
      endsAt: "2026-05-10T00:00:00Z",
      permanent: false,
    });
    expect(
      accessOf({ availability: null, earlyAccessDeadline: null, earlyAccessEndsAt: "2026-05-02T00:00:00Z", paidAccess: null }, NOW)?.endsAt,
    ).toBe("2026-05-02T00:00:00Z");
    expect(
      accessOf(
        { availability: "EarlyAccess", earlyAccessDeadline: "2026-04-01T00:00:00Z", earlyAccessEndsAt: null, paidAccess: null },
        NOW,
      ),
    ).toBeNull();
    expect(accessOf({ availability: "EarlyAccess", earlyAccessDeadline: null, earlyAccessEndsAt: null, paidAccess: null }, NOW)).toEqual({
      kind: "early_access",
      endsAt: null,
      permanent: false,
    });
    expect(accessOf({ availability: "Public", earlyAccessDeadline: null, earlyAccessEndsAt: null, paidAccess: null }, NOW)).toBeNull();
  });

  test("paidAccess {permanent, endsAt}", () => {
    expect(
      accessOf(
        { availability: null, earlyAccessDeadline: null, earlyAccessEndsAt: null, paidAccess: { permanent: true, endsAt: null } },
        NOW,
      ),
    ).toEqual({ kind: "paid", endsAt: null, permanent: true });
    const until = accessOf(
      {
        availability: null,
        earlyAccessDeadline: null,
        earlyAccessEndsAt: null,
        paidAccess: { permanent: false, endsAt: "2026-05-01T00:00:01Z" },
      },
      NOW,
    );
    expect(until).toEqual({ kind: "paid", endsAt: "2026-05-01T00:00:01Z", permanent: false });
    expect(accessText(until, NOW)).toBe("paid access until 2026-05-01 (1 day left)");
    expect(accessText({ kind: "paid", endsAt: null, permanent: true }, NOW)).toBe("paid access (permanent)");
    expect(
      accessOf(
        {
          availability: null,
          earlyAccessDeadline: null,
          earlyAccessEndsAt: null,
          paidAccess: { permanent: false, endsAt: "2026-01-01T00:00:00Z" },
        },
        NOW,
      ),
    ).toBeNull();
  });

  test("days left round up, never below 0, none without a date", () => {
    expect(daysLeft("2026-05-01T00:00:00Z", NOW)).toBe(0);
    expect(daysLeft("2026-04-01T00:00:00Z", NOW)).toBe(0);
    expect(daysLeft("2026-05-02T00:00:00Z", NOW)).toBe(1);
    expect(daysLeft("2026-05-02T00:00:01Z", NOW)).toBe(2);
    expect(daysLeft(null, NOW)).toBeNull();
    expect(daysLeft("later", NOW)).toBeNull();
  });

  test("licence in words, as declared", () => {
    expect(licenseText({ allowNoCredit: false, allowCommercialUse: [], allowDerivatives: false, allowDifferentLicense: false })).toBe(
      "no commercial use; credit required; no derivatives; same licence for derivatives",
    );
    expect(
      licenseText({ allowNoCredit: true, allowCommercialUse: ["Image", "Sell"], allowDerivatives: true, allowDifferentLicense: true }),
    ).toBe("commercial: Image, Sell");
    expect(licenseText(null)).toBeNull();
  });
});

describe("updateToFetch", () => {
  test("the same-base update, unless the library holds it; read by shape from a hand-edited file", () => {
    const newer = {
      versionId: 5,
      name: "v5",
      baseModel: "SDXL 1.0",
      publishedAt: null,
      access: null,
      inLibrary: [] as string[],
      pageUrl: "https://civitai.com/models/7?modelVersionId=5",
    };
    expect(updateToFetch({ update: { sameBaseModel: newer, newest: newer } })).toEqual({ versionId: 5, name: "v5" });
    expect(updateToFetch({ update: { sameBaseModel: { ...newer, inLibrary: ["/m/b.safetensors"] }, newest: newer } })).toBeNull();
    expect(updateToFetch({})).toBeNull();
    expect(updateToFetch({ update: "yes" as never })).toBeNull();
    expect(updateToFetch({ update: { sameBaseModel: { versionId: "5" }, newest: null } as never })).toBeNull();
  });
});
