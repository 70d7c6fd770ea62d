"""The results screen's feature maps: compared runs whose maps cannot be set side by side are
named with the reason, the layout follows a resize, thumbnails grow with the terminal."""

from __future__ import annotations

import json

from tests.tui_fixtures import SMOKE_ID, STUDY_ID, open_results, run_app, shows, tui_store, wait_until  # noqa: F401


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
