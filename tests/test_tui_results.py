"""The results screen's feature maps: compared runs whose maps cannot be set side by side are
named with the reason, the layout follows a resize, thumbnails grow with the terminal."""

from __future__ import annotations

import json

from tests.tui_fixtures import (
    SMOKE_ID,
    STUDY_ID,
    open_results,
    run_app,
    screen_text,
    shows,
    tui_store,
    wait_until,  # noqa: F401
)


def test_compare_names_the_run_whose_maps_are_of_other_images(tui_store):
    doc = json.loads((tui_store / STUDY_ID / "featuremaps.json").read_text())
    for k, image in enumerate(doc["images"]):
        image["index"] = 100 + k  # the same shapes, other test images
    (tui_store / SMOKE_ID / "featuremaps.json").write_text(json.dumps(doc))

    async def scenario(app, pilot):
        screen = await open_results(app, pilot, [STUDY_ID, SMOKE_ID], tab="m")
        await shows(pilot, "rows s1-s3")
        text = " ".join(screen.query_one("#maps-note").render().plain.split())
        assert SMOKE_ID in text and "other test images" in text, text
        assert "#100" in text and "#0" in text, text  # which images, on either side

    run_app(tui_store, (120, 40), scenario)


def test_maps_follow_a_resize_without_a_key(tui_store):
    async def scenario(app, pilot):
        screen = await open_results(app, pilot, [STUDY_ID], tab="m")
        text = await shows(pilot, "rows s1-s3")
        assert "8x8 px" in text and "16x16" not in text  # 80x24: the smallest thumbnails
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.5)  # no key: the resize alone lays the maps out again

        def laid_out_again() -> bool:  # 16x16 thumbnails, whole on their lines (none wrapped)
            text = screen_text(app)
            return "16x16 / 8x8 px" in text and f"│s1 {'▀' * 16} {'▀' * 16} {'▀' * 16} {'▀' * 16}" in text

        await wait_until(pilot, laid_out_again, 10, "the maps laid out for 120x40")
        assert screen.query_one("#featuremaps").size.width >= 33 + 70

    run_app(tui_store, (80, 24), scenario)


def _doc(tmp_path):
    from tests.tui_fixtures import make_fixture_runs

    root = tmp_path / "runs"
    if not root.exists():
        make_fixture_runs(root)
    return json.loads((root / STUDY_ID / "featuremaps.json").read_text())


def test_thumbnails_grow_to_each_stage_s_native_resolution():
    from ssltui.view.featuremaps import plan_layout

    # 120x40 (the maps' pane less its caption): larger than 8x8, one model a page (v: the next)
    layout = plan_layout(118, 32, n_models=3, n_channels=4)
    assert layout.thumb == 16 and layout.stage_px == (16, 16, 8) and layout.models == [0]
    assert plan_layout(118, 32, n_models=3, n_channels=4, view=2).models == [2]
    # a stage never grows past its own resolution: s3's maps are 8x8, s2's 16x16
    big = plan_layout(236, 66, n_models=1, n_channels=4)
    assert big.thumb == 32 and big.stage_px == (32, 16, 8)
    # `z`: every model at once, smaller
    every = plan_layout(118, 32, n_models=3, n_channels=4, compact=True)
    assert every.models == [0, 1, 2] and every.thumb == 8


def test_ascii_thumbnails_are_apart_and_a_legend_says_what_shades_mean(tmp_path):
    from ssltui.view.featuremaps import render_maps

    text = render_maps(_doc(tmp_path), 0, color=False, width=118, height=34).plain
    lines = text.splitlines()
    stage1 = next(ln for ln in lines if "│s1 " in ln).split("│")[1]
    thumbs = stage1[3:].rstrip().split("|")
    assert [len(t) for t in thumbs] == [16, 16, 16, 16], stage1  # apart by '|', not by a shade
    legend = lines[-1]
    assert "dark" in legend.lower() or "' '" in legend
    assert "lowest" in legend and "highest" in legend, legend
    colour = render_maps(_doc(tmp_path), 0, color=True, width=118, height=34).plain.splitlines()[-1]
    assert "lowest" in colour and "highest" in colour, colour


def test_the_colour_ramp_stays_ordered_in_256_colours(tmp_path):
    from rich.color import Color

    from ssltui.view.featuremaps import ramp_color, render_maps

    def luminance(c):
        t = Color.parse(c).get_truecolor()
        return 0.2126 * t.red + 0.7152 * t.green + 0.0722 * t.blue

    levels = [ramp_color(v, eight_bit=True) for v in range(0, 256, 8)]
    assert all(c.startswith("color(") for c in levels)
    lum = [luminance(c) for c in levels]
    assert all(b >= a for a, b in zip(lum, lum[1:])), lum  # never darker as the value grows
    assert len(set(levels)) >= 10, levels  # and enough steps to tell values apart
    text = render_maps(_doc(tmp_path), 0, color=True, width=118, height=34, eight_bit=True)
    assert any("color(" in str(span.style) for span in text.spans)


def test_maps_png_writes_one_image_per_test_image(tmp_path, data_dir):
    import subprocess
    import sys

    from PIL import Image

    from tests.conftest import REPO, cli_env
    from tests.tui_fixtures import make_fixture_runs

    runs = make_fixture_runs(tmp_path / "runs")
    out = tmp_path / "maps"
    proc = subprocess.run(
        [sys.executable, "-m", "ssltui", "maps", "paper-a1b2c3", "--png", str(out)],
        capture_output=True,
        text=True,
        env=cli_env(runs, data_dir),
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [
        f"{STUDY_ID}-image{k}-{c}.png" for k, c in enumerate(["airplane", "automobile", "bird", "cat"], 1)
    ]
    assert all(str(f) in proc.stdout for f in files)  # each file named as it is written
    with Image.open(files[0]) as im:
        assert im.format == "PNG" and im.width > 3 * 4 * 32 and im.height > 3 * 32
        colours = im.convert("RGB").getcolors(1 << 20)
        assert colours is not None and len(colours) > 50  # the maps, not a blank canvas
    # a path that is a file: one line, exit 2, nothing written
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    proc = subprocess.run(
        [sys.executable, "-m", "ssltui", "maps", "paper-a1b2c3", "--png", str(blocker)],
        capture_output=True,
        text=True,
        env=cli_env(runs, data_dir),
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "--png" in proc.stderr
    assert blocker.read_text() == "x"


def test_compare_shows_the_settings_that_differ(tui_store):
    from ssltui.core.config import run_options
    from ssltui.core.plan import plan_to_toml
    from ssltui.core.presets import resolve

    for run_id, lr in ((STUDY_ID, "0.05"), (SMOKE_ID, "0.2")):
        plan = resolve("smoke", method="supervised", sets=[f"supervised.lr={lr}"])
        (tui_store / run_id / "config.toml").write_text(plan_to_toml(plan, run_options(data="synthetic")))

    async def scenario(app, pilot):
        screen = await open_results(app, pilot, [STUDY_ID, SMOKE_ID], tab="t")
        from rich.console import Console

        def shown() -> str:
            console = Console(width=120, record=True, file=open("/dev/null", "w"))
            console.print(screen.query_one("#settings-diff").content)
            return console.export_text()

        await wait_until(pilot, lambda: "supervised.lr" in shown(), 10, "the settings that differ")
        text = shown()
        assert "0.05" in text and "0.2" in text
        assert "supervised.epochs" not in text  # the same in both: not listed

    run_app(tui_store, (120, 40), scenario)


def test_smoothing_is_a_debiased_moving_average():
    from ssltui.view.curves import smooth

    assert smooth([1.0, 2.0, 3.0], 0.0) == [1.0, 2.0, 3.0]
    out = smooth([1.0, 3.0], 0.5)
    assert out[0] == 1.0 and abs(out[1] - (0.5 * 0.5 * 1 + 0.5 * 3) / (1 - 0.25)) < 1e-12
    flat = smooth([2.0] * 5, 0.9)
    assert all(abs(v - 2.0) < 1e-12 for v in flat)  # no pull toward zero at the start


def test_curves_offer_smoothing_and_a_log_scale(tui_store):
    async def scenario(app, pilot):
        screen = await open_results(app, pilot, [STUDY_ID], tab="c")
        title = lambda: str(screen.query_one("#curves-title").render())  # noqa: E731
        assert "smoothed 0" not in title() and "log scale ·" not in title() and "loss on a log" not in title()
        loss_chart = screen.query_one("#curve-loss")
        raw = [list(ys) for _, ys in screen.shown_series("loss")]
        await pilot.press("s")
        await wait_until(pilot, lambda: "smoothed 0.6" in title(), 5, "smoothing")
        smoothed = [list(ys) for _, ys in screen.shown_series("loss")]
        assert smoothed != raw and all(len(a) == len(b) for a, b in zip(raw, smoothed))
        await pilot.press("l")
        await wait_until(pilot, lambda: "loss on a log scale" in title(), 5, "the log scale")
        assert loss_chart.log_y
        await pilot.press("s", "s")  # 0.6 -> 0.9 -> off
        await wait_until(pilot, lambda: "smoothed 0" not in title(), 5, "smoothing off")

    run_app(tui_store, (120, 40), scenario)
