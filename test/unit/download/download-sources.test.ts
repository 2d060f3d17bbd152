import { describe, expect, test } from "bun:test";
import { describeSource, parseDownloadSource } from "../../../src/download/download-sources.ts";
import { UsageError } from "../../../src/shared/errors.ts";

const SHA = "A".repeat(64);

describe("parseDownloadSource", () => {
  test.each([
    ["inv.json", { kind: "inventory", path: "inv.json" }],
    ["./dir/Inventory.JSON", { kind: "inventory", path: "./dir/Inventory.JSON" }],
    [SHA, { kind: "sha256", sha256: "a".repeat(64) }],
    ["456", { kind: "version", versionId: 456, fileId: null, host: null }],
    ["https://civitai.com/models/123?modelVersionId=456", { kind: "version", versionId: 456, fileId: null, host: "https://civitai.com" }],
    [
      "https://civitai.com/models/123/some-name?modelVersionId=456",
      { kind: "version", versionId: 456, fileId: null, host: "https://civitai.com" },
    ],
    ["https://www.civitai.com/models/123/some-name", { kind: "model", modelId: 123, host: "https://civitai.com" }],
    ["https://civitai.red/models/123", { kind: "model", modelId: 123, host: "https://civitai.red" }],
    ["https://civitai.com/api/download/models/456", { kind: "version", versionId: 456, fileId: null, host: "https://civitai.com" }],
    [
      "https://civitai.red/api/download/models/456?fileId=789&type=Model",
      { kind: "version", versionId: 456, fileId: 789, host: "https://civitai.red" },
    ],
    ["https://civitai.com/model-versions/456", { kind: "version", versionId: 456, fileId: null, host: "https://civitai.com" }],
    ["https://civitai.com/api/v1/model-versions/456", { kind: "version", versionId: 456, fileId: null, host: "https://civitai.com" }],
    ["urn:air:sdxl:lora:civitai:123@456", { kind: "version", versionId: 456, fileId: null, host: null }],
    ["urn:air:flux1:checkpoint:civitai:123@456.safetensors", { kind: "version", versionId: 456, fileId: null, host: null }],
    ["urn:air:sdxl:lora:civitai:123", { kind: "model", modelId: 123, host: null }],
  ])("%s", (arg, expected) => {
    expect(parseDownloadSource(arg)).toEqual(expected as never);
  });

  test.each([
    ["", /is empty/],
    ["abc", /not a recognised source/],
    ["0", /not a valid version id/],
    ["99999999999", /not a valid version id/],
    ["a".repeat(63), /not a recognised source/],
    ["https://evil.example/models/1?modelVersionId=2", /not a civitai\.com or civitai\.red URL/],
    ["https://civitai.com.evil.example/models/1", /not a civitai\.com/],
    ["https://civitai.com/images/123", /names no model or version/],
    ["https://civitai.com/models/123?modelVersionId=x", /invalid modelVersionId/],
    ["https://civitai.com/api/download/models/1?fileId=abc", /invalid id/],
    ["urn:air:sdxl:lora:huggingface:123@456", /not civitai/],
    ["urn:air:garbage", /not an AIR/],
    ["models/x.safetensors", /not a recognised source/],
  ])("%j → UsageError %s", (arg, message) => {
    let caught: unknown;
    try {
      parseDownloadSource(arg);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(UsageError);
    expect((caught as Error).message).toMatch(message);
    expect((caught as Error).message).toContain("A source is an inventory .json");
  });

  test("describeSource", () => {
    expect(describeSource(parseDownloadSource("https://civitai.com/api/download/models/4?fileId=5"))).toBe("version 4 file 5");
    expect(describeSource(parseDownloadSource(SHA))).toBe(`SHA-256 ${"a".repeat(64)}`);
  });
});
