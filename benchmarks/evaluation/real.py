"""The real side of the sample metrics, shared by the evaluator (evaluate.py), its backbones
(backbones.py) and its references (references.py): which real split and sample generated samples
are scored against (eval.gen_reference), and precision, recall, density and coverage against it,
with their protocol notes.
"""
import torch

import metrics

from ..core.protocol import PRDC, subset


def gen_split(data, ec):
    """The name of the split generated samples are scored against (`ec`: a config.Eval). "scored"
    is the split this run is scored on, which no model trained on: validation in a study's
    selection phase (data/splits.py puts it in test's place), test otherwise."""
    return "train" if ec.gen_reference == "train" else data.meta.get("scored_on", "test")


def gen_reference(data, ec, n):
    """(up to n real examples of gen_split, its name): what generated samples are scored against."""
    split = gen_split(data, ec)
    return subset(data.train if split == "train" else data.test, n)[0], split


def score_prdc(fake, real, suffix, device):
    """precision_<suffix>, recall_, density_ and coverage_ of generated features against the real
    reference's, on `device` (the distances are the cost)."""
    scores = metrics.prdc_scores(torch.as_tensor(fake).to(device), real)
    return {f"{m}_{suffix}": scores[m] for m in PRDC}


def prdc_notes(ec, split, suffix, space, n_real, n_gen=None, swept=True):
    """{column: note} of precision_<suffix>, recall_, density_ and coverage_ (see prdc): `n_gen`
    generated (default eval.gen_samples) against `n_real` real samples of `split`, in `space`;
    `swept`: the truncation sweep scores them too."""
    n_gen = n_gen or ec.gen_samples
    counts = (f"{n_gen} generated vs {n_real} real {split} samples in {space}"
              + (f"; truncation.csv scores its {ec.truncation_samples} per threshold against the same "
                 "real ones, so read its values against each other, not against this column" if swept else ""))
    k_pr, k_dc = metrics.prdc.PR_K, metrics.prdc.DC_K
    return {
        f"precision_{suffix}": (f"improved precision (Kynkäänniemi et al. 2019, torch-fidelity "
                                f"prc_features_to_metric, k = {k_pr}): the share of generated samples "
                                f"inside some real sample's {k_pr}-NN ball; {counts}"),
        f"recall_{suffix}": (f"improved recall (k = {k_pr}): the share of real samples inside some "
                             f"generated sample's {k_pr}-NN ball; {counts}"),
        f"density_{suffix}": (f"density (Naeem et al. 2020, k = {k_dc}): the real {k_dc}-NN balls "
                              f"holding a generated sample, / {k_dc}, averaged over generated samples; "
                              f"about 1 when they are distributed like the real data, above 1 when they "
                              f"crowd its dense regions; {counts}"),
        f"coverage_{suffix}": (f"coverage (Naeem et al. 2020, k = {k_dc}): the share of real samples "
                               f"whose {k_dc}-NN ball holds a generated sample; {counts}")}
