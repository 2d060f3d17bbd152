import { describe, expect, test } from "bun:test";
import { familyFromHint, guessModel, type TensorLike } from "../../../src/local/model-guess.ts";

const t = (name: string, shape: number[] = [1]): TensorLike => ({ name, shape });

describe("guessModel: kind and family from tensor names and shapes", () => {
  test("kohya SDXL LoRA: lora_unet … lora_down with a 2048-d cross-attention input, and lora_te2", () => {
    const g = guessModel([
      t("lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight", [16, 2048]),
      t("lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_up.weight", [640, 16]),
      t("lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", [16, 768]),
      t("lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", [16, 1280]),
    ]);
    expect(g).toMatchObject({ guessed: true, kind: "lora", subtype: null, family: "SDXL", confidence: "high" });
    expect(g.evidence.join(" ")).toContain("lora_down");
  });

  test("SD 1.5 LoRA: 768-d cross-attention context", () => {
    const g = guessModel([
      t("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight", [8, 768]),
      t("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight", [320, 8]),
      t("lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", [8, 768]),
    ]);
    expect(g).toMatchObject({ kind: "lora", family: "SD 1.x", confidence: "high" });
    expect(g.evidence).toContain("cross-attention context 768 (SD 1.x)");
  });

  test("SD 2.x LoRA from the 1024-d context; text-encoder width alone gives medium confidence", () => {
    expect(guessModel([t("lora_unet_x_attn2_to_k.lora_down.weight", [4, 1024])]).family).toBe("SD 2.x");
    expect(guessModel([t("lora_te_text_model_encoder_layers_0_self_attn_k_proj.lora_down.weight", [4, 1024])])).toMatchObject({
      family: "SD 2.x",
      confidence: "medium",
    });
  });

  test("PEFT / diffusers LoRA names (lora_A / lora_B) on a Flux transformer", () => {
    const g = guessModel([
      t("transformer.single_transformer_blocks.0.attn.to_k.lora_A.weight", [16, 3072]),
      t("transformer.single_transformer_blocks.0.attn.to_k.lora_B.weight", [3072, 16]),
    ]);
    expect(g).toMatchObject({ kind: "lora", family: "Flux" });
  });

  test("kohya Flux LoRA (lora_unet_double_blocks / single_blocks)", () => {
    const g = guessModel([
      t("lora_unet_double_blocks_0_img_attn_proj.lora_down.weight", [16, 3072]),
      t("lora_unet_single_blocks_0_linear1.lora_down.weight", [16, 3072]),
    ]);
    expect(g).toMatchObject({ kind: "lora", family: "Flux", confidence: "high" });
  });

  test("DoRA and conv LoRA subtypes", () => {
    expect(guessModel([t("lora_unet_a.lora_down.weight", [4, 768]), t("lora_unet_a.dora_scale", [1, 768])]).subtype).toBe("DoRA");
    expect(guessModel([t("lora_unet_input_blocks_1_0_in_layers_2.lora_down.weight", [4, 320, 3, 3])]).subtype).toBe("LoCon (conv layers)");
  });

  test("LyCORIS: LoHa (hada_w1_a), LoKr (lokr_w1), LoCon (lora_mid or lycoris module)", () => {
    expect(
      guessModel([t("lora_unet_a.hada_w1_a", [4, 4]), t("lora_unet_a.hada_w1_b"), t("lora_unet_a.hada_w2_a"), t("lora_unet_a.hada_w2_b")]),
    ).toMatchObject({
      kind: "lycoris",
      subtype: "LoHa",
    });
    expect(guessModel([t("lora_unet_a.lokr_w1", [4, 4]), t("lora_unet_a.lokr_w2", [4, 4])])).toMatchObject({
      kind: "lycoris",
      subtype: "LoKr",
    });
    expect(guessModel([t("lora_unet_a.lora_down.weight", [4, 320, 1, 1]), t("lora_unet_a.lora_mid.weight", [4, 4, 3, 3])])).toMatchObject({
      kind: "lycoris",
      subtype: "LoCon",
    });
    const viaModule = guessModel([t("lora_unet_a.lora_down.weight", [4, 320])], { networkModule: "lycoris.kohya" });
    expect(viaModule.kind).toBe("lycoris");
    expect(viaModule.evidence.join(" ")).toContain("lycoris.kohya");
  });

  test("SDXL full checkpoint: conditioner.embedders.1 and a 2048-d input_blocks cross-attention", () => {
    const g = guessModel([
      t("model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight", [640, 2048]),
      t("model.diffusion_model.label_emb.0.0.weight", [1280, 2816]),
      t("conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight", [49408, 768]),
      t("conditioner.embedders.1.model.token_embedding", [49408, 1280]),
      t("first_stage_model.encoder.down.0.block.0.conv1.weight", [128, 128, 3, 3]),
    ]);
    expect(g).toMatchObject({ kind: "checkpoint", family: "SDXL", confidence: "high" });
    expect(g.evidence.join(" ")).toContain("conditioner.embedders.1");
  });

  test("SD 1.5 checkpoint: 768-d cross-attention and CLIP-L", () => {
    const g = guessModel([
      t("model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", [320, 768]),
      t("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", [49408, 768]),
      t("first_stage_model.decoder.up.0.block.0.conv1.weight", [128, 128, 3, 3]),
    ]);
    expect(g).toMatchObject({ kind: "checkpoint", family: "SD 1.x", confidence: "high" });
  });

  test("UNet only (model.diffusion_model without VAE / text encoder), SD 2.x by 1024-d", () => {
    expect(guessModel([t("model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", [320, 1024])])).toMatchObject({
      kind: "unet",
      family: "SD 2.x",
    });
  });

  test("Flux transformer alone (double_blocks / single_blocks) and SD3 (joint_blocks)", () => {
    expect(
      guessModel([t("double_blocks.0.img_attn.qkv.weight", [9216, 3072]), t("single_blocks.0.linear1.weight"), t("img_in.weight")]),
    ).toMatchObject({
      kind: "unet",
      family: "Flux",
      confidence: "high",
    });
    expect(guessModel([t("model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight", [4608, 1536])])).toMatchObject({
      kind: "unet",
      family: "SD3",
    });
  });

  test("textual inversion: emb_params 768 (SD 1.x), string_to_param 1024 (SD 2.x), clip_l + clip_g (SDXL)", () => {
    expect(guessModel([t("emb_params", [4, 768])])).toMatchObject({ kind: "textual-inversion", family: "SD 1.x", confidence: "high" });
    expect(guessModel([t("string_to_param.*", [2, 1024])])).toMatchObject({ kind: "textual-inversion", family: "SD 2.x" });
    expect(guessModel([t("clip_l", [8, 768]), t("clip_g", [8, 1280])])).toMatchObject({ kind: "textual-inversion", family: "SDXL" });
  });

  test("VAE: encoder.down + decoder.up only; 16 latent channels noted", () => {
    const sd = guessModel([
      t("encoder.down.0.block.0.conv1.weight"),
      t("decoder.up.0.block.0.conv1.weight"),
      t("decoder.conv_in.weight", [512, 4, 3, 3]),
      t("quant_conv.weight"),
    ]);
    expect(sd).toMatchObject({ kind: "vae", family: "unknown" });
    expect(sd.evidence.join(" ")).toContain("4 latent channels");
    const flux = guessModel([
      t("encoder.down.0.block.0.conv1.weight"),
      t("decoder.up.0.block.0.conv1.weight"),
      t("decoder.conv_in.weight", [512, 16, 3, 3]),
    ]);
    expect(flux.evidence.join(" ")).toContain("16 latent channels");
  });

  test("ControlNet: control_model. prefix and input_hint_block, family from its cross-attention", () => {
    const g = guessModel([
      t("control_model.input_hint_block.0.weight", [16, 3, 3, 3]),
      t("control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", [320, 768]),
      t("control_model.zero_convs.0.0.weight", [320, 320, 1, 1]),
    ]);
    expect(g).toMatchObject({ kind: "controlnet", family: "SD 1.x" });
    expect(guessModel([t("input_hint_block.0.weight"), t("zero_convs.0.0.weight")]).kind).toBe("controlnet");
  });

  test("text encoder alone", () => {
    expect(guessModel([t("text_model.encoder.layers.0.self_attn.q_proj.weight", [768, 768])]).kind).toBe("text-encoder");
    expect(guessModel([t("encoder.block.0.layer.0.SelfAttention.q.weight"), t("shared.weight")]).kind).toBe("text-encoder");
  });

  test("HunyuanVideo's double_blocks / single_blocks are not called Flux; Flux's own names still are", () => {
    const hunyuan = guessModel([
      t("double_blocks.0.img_attn_qkv.weight", [9216, 3072]),
      t("double_blocks.0.img_mod.linear.weight", [18432, 3072]),
      t("single_blocks.0.linear1.weight", [21504, 3072]),
      t("txt_in.individual_token_refiner.blocks.0.norm1.weight", [3072]),
      t("img_in.proj.weight", [3072, 16, 1, 2, 2]),
    ]);
    expect(hunyuan).toMatchObject({ kind: "unet", family: "unknown", confidence: "low" });
    expect(hunyuan.evidence.join(" ")).toContain("HunyuanVideo");
    // musubi-tuner's kohya-style HunyuanVideo LoRA: img_mod_linear / img_mlp_fc1 / modulation_linear.
    const hunyuanLora = guessModel([
      t("lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight", [32, 3072]),
      t("lora_unet_double_blocks_0_img_mlp_fc1.lora_down.weight", [32, 3072]),
      t("lora_unet_single_blocks_0_modulation_linear.lora_down.weight", [32, 3072]),
    ]);
    expect(hunyuanLora).toMatchObject({ kind: "lora", family: "unknown" });
    // kohya Flux LoRA: img_mod_lin / img_mlp_0 / modulation_lin (img_attn_qkv is spelled alike in both).
    const fluxLora = guessModel([
      t("lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight", [16, 3072]),
      t("lora_unet_double_blocks_0_img_mod_lin.lora_down.weight", [16, 3072]),
      t("lora_unet_double_blocks_0_img_mlp_0.lora_down.weight", [16, 3072]),
      t("lora_unet_single_blocks_0_modulation_lin.lora_down.weight", [16, 3072]),
    ]);
    expect(fluxLora).toMatchObject({ kind: "lora", family: "Flux", confidence: "high" });
  });

  test("AuraFlow's single_transformer_blocks (beside joint_transformer_blocks) are not called Flux", () => {
    const g = guessModel([
      t("transformer.joint_transformer_blocks.0.attn.to_q.lora_A.weight", [16, 3072]),
      t("transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight", [16, 3072]),
    ]);
    expect(g).toMatchObject({ kind: "lora", family: "unknown" });
  });

  test("unknown tensors stay unknown with low confidence", () => {
    expect(guessModel([t("foo.bar"), t("baz")])).toEqual({
      guessed: true,
      kind: "unknown",
      subtype: null,
      family: "unknown",
      confidence: "low",
      evidence: [],
    });
  });

  test("metadata hints fill in the family when tensors say nothing, and lower confidence when they disagree", () => {
    const filled = guessModel([t("lora_unet_a.lora_down.weight", [4, 4])], { baseModelVersion: "sdxl_base_v1-0" });
    expect(filled).toMatchObject({ kind: "lora", family: "SDXL", confidence: "medium" });
    expect(filled.evidence.join(" ")).toContain('metadata says SDXL ("sdxl_base_v1-0")');
    const disagree = guessModel([t("lora_unet_x_attn2_to_k.lora_down.weight", [4, 768])], {
      architecture: "stable-diffusion-xl-v1-base/lora",
    });
    expect(disagree).toMatchObject({ family: "SD 1.x", confidence: "low" });
    expect(guessModel([], { architecture: "flux-1-dev/lora" })).toMatchObject({ kind: "lora", family: "Flux" });
  });

  test("familyFromHint reads kohya, ModelSpec and GGUF names", () => {
    expect(familyFromHint("sd_v1")).toBe("SD 1.x");
    expect(familyFromHint("sd_v2_768_v")).toBe("SD 2.x");
    expect(familyFromHint("stable-diffusion-v1")).toBe("SD 1.x");
    expect(familyFromHint("stable-diffusion-xl-v1-base/lora")).toBe("SDXL");
    expect(familyFromHint("stable-diffusion-v3-medium")).toBe("SD3");
    expect(familyFromHint("flux1")).toBe("Flux");
    expect(familyFromHint("llama")).toBe("unknown");
  });
});
