"""perf's record (perf.run_perf) as the page <out>/<device>.md: the setting, the training
table, the profile, the run loop against a hand-written BiGAN and the evaluation's timings. A
section whose part was not measured says so, or is left out.
"""


def to_markdown(r):
    lines = _setting(r) + _training(r) + _profile(r)
    if r.get("run_loop_vs_plain"):
        lines += _run_loop(r["run_loop_vs_plain"])
    return "\n".join(lines + _evaluation(r))


def _precision_text(p):
    if not isinstance(p, dict):  # records written before the settings were explicit
        return str(p or "fp32")
    return (f"autocast {p.get('autocast') or 'off'}, fp32 matmuls {p['fp32_matmul']}, fp32 convolutions "
            f"{p['fp32_conv']}, cuDNN autotuning {'on' if p.get('cudnn_benchmark') else 'off'}"
            + (f", evaluation fp32 {p['evaluation_fp32']}" if p.get("evaluation_fp32") else ""))


def _setting(r):
    rt = r["runtime"]
    return [f"# Throughput on {r['device']}", "",
            f"- command: `{r['command']}`", f"- date: {r['date']}",
            f"- benchmark: {r['benchmark']} ({r['budget']} sizes: {r['sizes']})",
            f"- harness path: {rt['path']}, compile {rt['compile']}"
            + (f" ({rt['compile_backend']})" if rt.get("compile") else "")
            + (f", step capture: {rt['capture']}" if rt.get("capture") else "")
            + f", losses read every {rt['sync_every']} steps, precision: " + _precision_text(rt.get("precision")),
            "- baseline: fp32 eager, DataLoader over the uint8 cache, host-to-device copy per batch, `.item()` every "
            "step",
            f"- {r['steps']} timed steps after {r['warmup']} warm-up steps (compilation not timed), one process",
            "- versions: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()), ""]


def _training(r):
    captured = any(row.get("captured") for row in r["training"])  # perf --capture: the step as a graph, or why not
    lines = ["## Training", "",
             "| model | images/step | baseline img/s | harness img/s | speed-up | baseline ms/G step "
             "| harness ms/G step | compile s |" + (" harness step |" if captured else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|" if captured else "")]
    for row in r["training"]:
        lines.append(f"| {row['model']} | {row['images_per_step']} | {row['baseline_img_s']} | {row['harness_img_s']} "
                     "| "
                     f"{row['speedup']}x | {row['baseline_ms_per_g_step']} | {row['harness_ms_per_g_step']} | "
                     f"{row.get('compile_s', '')} |"
                     + (f" {_step_kind(row.get('captured'), r['runtime'].get('capture', ''))} |" if captured else ""))
    if not r.get("complete", True):
        lines += ["", "**Incomplete:** the command stopped before it had timed every model and the evaluation; "
                  "the rows above are the models it finished."]
    return lines + ["", "Images/s counts the real images D consumes (BiGAN-QP and BigBiGAN take several batches per "
                    "G step)."]


def _step_kind(captured, how):
    if captured != "graph":
        return f"eager: {captured}"
    return "one graph (emulated on the CPU)" if how.startswith("emulated") else "one CUDA graph"


def _profile(r):
    profiled = [row for row in r["training"] if row.get("profile")]
    if not profiled:
        return []
    lines = ["", "## Profile", "",
             f"{r.get('profile_steps')} more steps of each loop under torch.profiler: the share of the profiled "
             "time in which the GPU ran a kernel, copy or fill, and such device operations per G step "
             "(empty on a CPU).", "",
             "| model | baseline: GPU busy | baseline: device ops/step | harness: GPU busy "
             "| harness: device ops/step |",
             "|---|---|---|---|---|"]
    for row in profiled:
        cells = [row["model"]]
        for side in ("baseline", "harness"):
            prof = row["profile"].get(side) or {}
            cells += [f"{prof['gpu_busy']:.0%}" if prof.get("gpu_busy") is not None else "",
                      prof.get("device_events_per_step") or ""]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def _run_loop(sbs):
    return ["", "## The run loop against a hand-written BiGAN", "",
            f"`bigan` trained by `train()` (the `run` command's loop: FLOP-counted first step, losses read "
            f"every step, log every {sbs['log_every']} steps, checkpoint every {sbs['checkpoint_every']} steps) "
            f"against `benchmarks/perf/plain_bigan.py` (the same G, E, D widths, batch, Adam and BCE losses, "
            f"simultaneous update, a bare loop), {sbs['steps']} steps each, {sbs['threads']} thread(s), "
            "timed plain, harness, plain:", "",
            "| plain before, s/1000 steps | harness run loop, s/1000 steps | plain after, s/1000 steps "
            "| harness / faster plain |",
            "|---|---|---|---|",
            f"| {sbs['plain_before_s_per_1k']} | {sbs['harness_run_s_per_1k']} | {sbs['plain_after_s_per_1k']} | "
            f"{sbs['ratio']}x |"]


def _precisions(modes):
    """The other precisions' steady-state rates, and how far their features and FD move from IEEE fp32's."""
    if not modes:
        return ""
    parts = [f"{m} {row['images_per_s']} images/s (features within {row['max_rel_diff']:.2g} of the largest "
             f"IEEE value, FD between the halves moved by {row['fd_shift']:.2g} from {modes['ieee']['fd_halves']})"
             for m, row in modes.items() if m != "ieee"]
    return "; " + "; ".join(parts) + ". Evaluation stays in IEEE fp32 (the precision policy)"


def _evaluation(r):
    p, inc = r["probe"], r.get("inception")
    return ["", "## Evaluation", "",
            (f"- InceptionV3 features: {inc['images_per_s']} images/s in IEEE fp32 ({inc['setting']})"
             + _precisions(inc.get("precisions")) if inc
             else "- InceptionV3 features: not applicable (the data are not images)"
             if len(r["sizes"]["data_shape"]) != 3
             else "- InceptionV3 features: not measured"),
            (f"- DINOv2 ViT-L/14 features: {r['dinov2']['images_per_s']} images/s ({r['dinov2']['setting']})"
             if r.get("dinov2") else "- DINOv2 ViT-L/14 features: not measured (timed by default on a GPU only)"),
            (f"- linear probe ({p['setting']}): torch back end {p['torch']['seconds']} s (accuracy "
             f"{p['torch']['accuracy']}), scikit-learn {p['sklearn']['seconds']} s (accuracy "
             f"{p['sklearn']['accuracy']})"
             if p else "- linear probe: not measured"), ""]
