"""Models and plugins page: every registered component, every model found by name, and the
models that can be pulled (state, size, licence, a Pull button with progress)."""

from __future__ import annotations

import streamlit as st

from medseg.evaluation.metrics import METRIC_INFO
from medseg.hub import by_name as hub
from medseg.hub.install import mib
from medseg.hub.offers import download_size, offers
from medseg_ui import engine, model_facts
from medseg_ui.session import error_message
from medseg_ui.text import plain, shown_path

st.set_page_config(page_title="medseg · Models and plugins", page_icon=":material/extension:",
                   layout="wide")
st.title("Models and plugins")

st.header("Registered components")
try:
    rows = engine.registry().describe()
except Exception as exc:
    st.error(plain(error_message(exc)))
    rows = []
kinds = ["architecture", "loss", "postprocessor", "reader", "metric", "model_format"]
kinds += sorted({r["kind"] for r in rows} - set(kinds))
PLURAL = {"loss": "losses", "model_format": "model formats"}
titles = [f"{PLURAL.get(k, k + 's')} ({sum(r['kind'] == k for r in rows)})" for k in kinds]
# built-in metrics are computed by the engine itself; plugin metrics add columns to them
BUILTIN_METRICS = [{"name": name, "unit": unit, "definition": text}
                   for name, (unit, _higher, text) in METRIC_INFO.items()]
titles = [f"metrics ({len(BUILTIN_METRICS)} built-in, {sum(r['kind'] == 'metric' for r in rows)}"
          f" from plugins)" if k == "metric" else t for k, t in zip(kinds, titles, strict=True)]
for tab, kind in zip(st.tabs(titles), kinds, strict=True):
    with tab:
        if kind == "metric":
            st.markdown("**Built-in** (every evaluation report computes these)")
            st.dataframe(BUILTIN_METRICS, hide_index=True, width="stretch",
                         key="components_builtin_metrics")
            st.markdown("**From plugins** (medseg_register_metrics hook)")
        if not any(r["kind"] == kind for r in rows):
            plural = PLURAL.get(kind, kind + "s")
            st.info(f"No {plural} registered; plugins add them through "
                    f"the medseg_register_{plural.replace(' ', '_')} hook.")
            continue
        st.dataframe([{"name": r["name"], "plugin": r["plugin"],
                       "description": r["description"]} for r in rows if r["kind"] == kind],
                     hide_index=True, width="stretch", key=f"components_{kind}")

st.header("Models")
st.caption("Every model usable by name, any format: the bundled ones, $MEDSEG_MODELS_DIR and "
           "TotalSegmentator's folders (~/.totalsegmentator/nnunet/results). Nothing is "
           "downloaded here: see Pull models below.")
names = engine.models()
if not names:
    st.info("No model found (sample_data/models/, $MEDSEG_MODELS_DIR or "
            "~/.totalsegmentator/nnunet/results).")
for name in names:
    try:
        info = engine.model_info(name)
    except Exception as exc:
        st.error(plain(f"{name}: {error_message(exc)}"))
        continue
    with st.expander(plain(f"{info.name} ({name}) · {info.format}"), expanded=True):
        facts = [f"format **{plain(info.format)}**", f"{info.spatial_dims}D",
                 f"{info.in_channels} input channel(s)"]
        if info.modality:
            facts.append(f"modality {plain(info.modality)}")
        if info.spacing:
            facts.append("spacing " + " × ".join(f"{v:g}" for v in info.spacing) + " mm")
        if info.patch_size:
            facts.append("patch " + " × ".join(map(str, info.patch_size)))
        if info.folds:
            facts.append("folds " + plain(", ".join(info.folds)))
        st.markdown(" · ".join(facts))
        st.text(f"source: {shown_path(info.source)}")
        bundle = None
        if info.format == "medseg":
            try:
                bundle = engine.medseg_bundle(name)
            except Exception as exc:
                st.error(plain(f"{name}: {error_message(exc)}"))
        training = bundle.config.get("training", {}) if bundle else {}
        val, test = training.get("val_dice", {}), training.get("test_dice", {})
        rows = [{"label": v, "class": n} for v, n in sorted(info.label_names.items())]
        if bundle:
            rows = [{**r, "validation Dice": val.get(r["class"]),
                     "test Dice": test.get(r["class"])} for r in rows]
        st.dataframe(rows, hide_index=True, key=f"labels_{name}")
        st.markdown("**Limitations**\n" + "\n".join(
            f"- {plain(text)}" for text in model_facts.limitations(
                info, bundle.config if bundle else None)))
        if info.details:
            st.markdown("**Details**")
            st.dataframe(model_facts.setting_rows(info.details), hide_index=True,
                         width="stretch", key=f"details_{name}")
        if bundle:
            cfg = bundle.config
            c1, c2 = st.columns(2)
            c1.markdown("**Preprocessing**")
            c1.dataframe(model_facts.preprocessing_rows(cfg.get("preprocessing", {})),
                         hide_index=True, width="stretch", key=f"preprocessing_{name}")
            c2.markdown("**Architecture parameters**")
            params = cfg["architecture"].get("params", {})
            c2.dataframe(model_facts.setting_rows(params) or [
                {"setting": "(all defaults)", "value": cfg["architecture"].get("name", "")}],
                hide_index=True, width="stretch", key=f"architecture_{name}")


st.header("Pull models")
st.caption("TotalSegmentator's openly licensed tasks (their release zips, into TotalSegmentator's "
           "weights folder, usable by TotalSegmentator too) and MONAI model-zoo bundles (into "
           "the models folder; their configs run only when trusted). Each download is resumed "
           "after a dropped connection, checked, installed with one rename and recorded with a "
           "sha256 per file (`medseg models verify`). Tasks that need TotalSegmentator's licence "
           "key are listed, never pulled; no key or usage statistics are sent anywhere.")
try:
    offered = offers()
except Exception as exc:
    st.error(plain(error_message(exc)))
    offered = []
st.dataframe([{"model": o.name, "kind": o.kind, "classes": o.classes, "modality": o.modality,
               "state": o.state if o.pullable else (o.note or "licence key needed"),
               "size on disk": mib(o.size_on_disk) if o.size_on_disk else "",
               "licence": o.licence} for o in offered],
             hide_index=True, width="stretch", key="pull_offers")
pullable = {o.name: o for o in offered if o.pullable}
if pullable:
    pick = st.selectbox("Model to pull", list(pullable), key="pull_pick")
    chosen = pullable[pick]
    st.markdown(f"Licence: **{plain(chosen.licence)}** · {plain(chosen.licence_url)}")
    st.dataframe([{"folder": f.folder, "state": f.state, "detail": f.why,
                   "size on disk": mib(f.size) if f.size else ""} for f in chosen.folders],
                 hide_index=True, key="pull_folders")
    c1, c2 = st.columns(2)
    if c1.button("Download size", key="pull_size"):
        size = download_size(chosen)
        st.info("Nothing left to download." if size == 0 else
                plain(f"To download: {mib(size)}.") if size is not None else
                "The server did not say (or cannot be reached).")
    if c2.button("Pull", type="primary", key="pull_button"):
        bar = st.progress(0.0, text=plain(f"{pick}: starting"))
        said: list[str] = []

        shown: dict[str, int] = {}

        def show(folder: str, done: int, total: int | None) -> None:
            share = min(done / total, 1.0) if total else 0.0
            if shown.get(folder) == int(share * 100) and done != total:
                return  # one update per percent
            shown[folder] = int(share * 100)
            of = f" of {mib(total)}" if total else ""
            bar.progress(share, text=plain(f"{folder}: {mib(done)}{of}"))

        try:
            hub.pull(pick, say=said.append, progress=show)
        except Exception as exc:
            st.session_state["pull_result"] = ("error", error_message(exc), said)
        else:
            st.session_state["pull_result"] = (
                "success", f"{pick} is ready: use it with -m {pick}", said)
        st.rerun()  # the tables above show the new state
result = st.session_state.get("pull_result")
if result:
    kind, text, said = result
    (st.error if kind == "error" else st.success)(plain(text))
    if said:
        st.code("\n".join(said), language=None)
