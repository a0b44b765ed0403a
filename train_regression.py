"""Train one VGG16 regression model per rater group x trait on all images.

VGG16's conv layers stay frozen, so their features come from the cache (extracted once); only
the head is fitted (model.head: ridge, with feature set and penalty chosen by inner CV, or the
reference study's mlp), then mounted on the base and saved as one plain Keras model:
models/<group>__<trait>.h5, with models/<group>__<trait>.json (settings chosen, config hash,
seed, metrics). A model whose inputs (features, ratings, settings) did not change is kept.
Then fig/face_space.png: a t-SNE map per model of the features its head reads, coloured by rating.

    python train_regression.py
    python train_regression.py --group ASD --set model.weights=PATH/vgg16_notop.h5
"""
import sys

from facetraits import cache, cli, config, data, face_space, metrics, model, outputs, plots, provenance, training


def up_to_date(model_path, record_path, inputs: str, trained_on: dict) -> bool:
    """The model was fitted on these inputs, its record says so in the parts lrp_analysis.py checks,
    and its file is the one saved then (a truncated or replaced .h5 has another sha256, so it is
    fitted again rather than reported up to date)."""
    record = provenance.read_record(record_path)
    if not model_path.is_file() or record is None:  # missing or damaged: fitted again
        return False
    return (record.get("inputs") == inputs and not provenance.stale_parts(record, trained_on)
            and record.get("model_sha256") == cache.file_digest(model_path))


@cli.script(writes=("models_dir", "cache_dir", "fig_dir"))
def main(run):
    cfg = run.config
    dataset = data.load(cfg)  # bad ratings or images, or too few identities for the folds, are reported
    training.outer_folds(dataset, cfg)  # before VGG16 is built (or downloaded)
    base = model.build_base(cfg.model, cfg.seed)
    study = training.load_study(cfg, base, dataset)
    dataset, maps = study.dataset, study.features
    for group, trait in run.models:
        name = cli.model_name(group, trait)
        y = dataset.target(group, trait)
        inputs = provenance.inputs_key(cfg, *maps.values(), y, dataset.identities.tolist(), model.HEAD_LAYOUT)
        model_path = cli.model_path(cfg, group, trait)
        record_path = model_path.with_suffix(".json")
        fitted_on = provenance.trained_on(cfg, dataset, y)
        if up_to_date(model_path, record_path, inputs, fitted_on):
            print(f"{name}: up to date ({model_path})", file=sys.stderr)
            continue
        trained = training.fit_head(maps, y, dataset.identities, cfg, seed=cfg.seed)
        with outputs.atomic_path(model_path) as tmp:
            model.mount(base, trained.head).save(tmp, save_format="h5")
        fitted = trained.predict(maps)
        scores = {"train_pearson_r": metrics.pearson_r(y, fitted), "train_mae": metrics.mae(y, fitted),
                  "n_images": len(y), "epochs": trained.epochs}
        outputs.write_json(record_path, outputs.run_record(
            "train_regression.py", run.argv, config.as_dict(cfg), run=run.id, group=group, trait=trait, inputs=inputs,
            config_hash=cfg.hash(), seed=cfg.seed, settings=trained.settings, metrics=scores,
            trained_on=fitted_on,
            model_sha256=cache.file_digest(model_path)))
        chosen = trained.settings
        training.warn_if_flat(name, chosen, cfg)
        print(f"{name}: {chosen['head']} head on {chosen['layers']}@{chosen['grid']} (alpha {chosen['alpha']:.3g}) "
              f"fitted in {trained.seconds:.1f} s, train r = {scores['train_pearson_r']:.3f} "
              f"(in-sample; see cross_validate.py) -> {model_path}")
    spaces = face_space.trained_spaces(maps, dataset, run.models, cfg)
    run.save_figure(plots.face_space(spaces), "face_space.png")


if __name__ == "__main__":
    main()
