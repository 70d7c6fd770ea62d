"""The results screen's feature maps: compared runs whose maps cannot be set side by side are
named with the reason, the layout follows a resize, thumbnails grow with the terminal."""

from __future__ import annotations

import json

from tests.tui_fixtures import (SMOKE_ID, STUDY_ID, open_results, run_app, screen_text, shows, tui_store,
                                wait_until)  # noqa: F401


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
        assert "of 3 (v: next)" in text  # 80x24: one model at a time
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.5)  # no key: the resize alone lays the maps out again

        def side_by_side() -> bool:  # every model's title on the one line, none wrapped under another
            lines = screen_text(app).splitlines()
            return any("supervised · seed 0" in ln and "simclr · seed 0" in ln
                       for ln in lines) and "(v: next)" not in screen_text(app)

        await wait_until(pilot, side_by_side, 10, "the maps laid out for 120x40")

    run_app(tui_store, (80, 24), scenario)
