"""The runs browser: every saved run (running first), filter by typing, sort, open, mark, compare,
resume, archive, delete."""

from __future__ import annotations

import time

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.events import Key, Paste
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static
from textual.worker import get_current_worker

from ssltui.core.errors import ConfigError
from ssltui.core.notes import RunNotes
from ssltui.core.store import RunDir, RunInfo
from ssltui.core.table import measured, pool
from ssltui.tui.manage import RESUMABLE, archive_run, delete_run, folder_size
from ssltui.tui.runstate import RunState
from ssltui.tui.screens.common import Confirm, EditNotes, NavTable, resume_run
from ssltui.tui.watch import RunTail
from ssltui.view.format import duration, label_fraction
from ssltui.view.tables import run_cells, short_id

REFRESH_SECONDS = 2.0
# Columns by terminal width (of view.tables.run_cells; "run" is the id without its date).
COLUMN_SETS = (
    (110, ("status", "method", "labels", "test acc %", "started", "id")),
    (100, ("status", "method", "labels", "test acc %", "started", "run")),
    (0, ("status", "method", "labels", "test acc %", "run")),
)


def columns_for(width: int) -> tuple[str, ...]:
    return next(cols for least, cols in COLUMN_SETS if width >= least)


def _fraction(text: str) -> float | None:
    """'0.01' or '1%' -> 0.01; None when it is no number."""
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        return None


# FIELD:VALUE words of the filter: what each field of a run is, as lowercase text values
FIELDS = {
    "method": lambda i: i.methods,
    "status": lambda i: [i.status],
    "preset": lambda i: [i.preset],
    "eval": lambda i: i.evaluations,
    "evaluation": lambda i: i.evaluations,
    "id": lambda i: [i.id],
    "seed": lambda i: [str(s) for s in i.seeds],
    "seeds": lambda i: [str(s) for s in i.seeds],
    "tag": lambda i: i.tags,
    "note": lambda i: [i.note],
}


def _word_matches(info: RunInfo, word: str, hay: str) -> bool:
    field, colon, value = word.partition(":")
    if colon and value and field in ("labels", "label"):
        want = _fraction(value)
        return want is not None and any(abs(f - want) <= 1e-9 * max(1.0, abs(want)) for f in info.labels)
    if colon and value and field in FIELDS:
        values = [v.lower() for v in FIELDS[field](info)]
        if field in ("seed", "seeds", "status", "tag"):
            return value in values
        return any(value in v for v in values)
    return word in hay


def matches(info: RunInfo, needle: str) -> bool:
    """Every word of the filter appears in the run's id, status, preset, methods, evaluations or
    labels; a FIELD:VALUE word looks in that field only (method:simclr, labels:0.01 or labels:1%,
    status:failed, preset:, eval:, seed:, id:, tag:baseline, note:)."""
    hay = " ".join(
        [
            info.id,
            info.status,
            info.preset,
            info.group,
            *info.methods,
            *info.evaluations,
            *(label_fraction(f) for f in info.labels),
            *info.tags,
            info.note,
        ]
    ).lower()
    return all(_word_matches(info, w, hay) for w in needle.lower().split())


def best_accuracy(info: RunInfo) -> float:
    """The run's best mean test accuracy over seeds of any cell (-1 without results)."""
    cells = [sum(s.values()) / len(s) for by_frac in pool(measured(info.results)).values() for s in by_frac.values()]
    return max(cells, default=-1.0)


def run_progress(state: RunState, now: float | None = None) -> str | None:
    """A running run's progress over its planned phases and the time left: the phase in progress
    at the rate seen since it started, each phase still to come at the mean time of those run."""
    total = state.total_phases
    if state.status != "running" or not total:
        return None
    current = state.current
    partial = current.fraction if current is not None and not current.done else 0.0
    done = state.phases_done + partial
    text = f"{100 * done / total:.0f}%"
    eta = current.eta_seconds() if current is not None and not current.done else 0.0
    spent = [p.seconds for p in state.phases.values() if p.done and p.seconds]
    left = total - state.phases_done - (1 if partial else 0)
    if eta is not None and (left <= 0 or spent):
        if current is not None and current.t_last is not None and now is not None:
            eta = max(0.0, eta - (now - current.t_last))
        eta += max(0, left) * (sum(spent) / len(spent) if spent else 0.0)
        text += f" eta {duration(eta)}"
    return text


def shown_key(info: RunInfo) -> tuple:
    """What the list shows of a run (and sorts and filters it by): a change in any of it redraws.
    A run first listed before its summary.json was written has no method yet; its summary
    appearing must fill the row even though its status is still `running`."""
    return (
        info.id,
        info.status,
        info.preset,
        info.group,
        tuple(info.methods),
        tuple(info.evaluations),
        tuple(info.labels),
        info.started,
        len(info.results),
        info.note,
        tuple(info.tags),
    )


# name -> sort key; the store's own order (running first, then newest) is the first.
SORTS = {
    "newest": None,
    "oldest": lambda i: (i.started or 0, i.id),
    "status": lambda i: (i.status, -(i.started or 0)),
    "method": lambda i: ("+".join(i.methods), -(i.started or 0)),
    "best accuracy": lambda i: (-best_accuracy(i), -(i.started or 0)),
}


class RunsTable(NavTable):
    BINDINGS = [Binding("enter", "select_cursor", "Open")]


class RunsScreen(Screen):
    """The home screen."""

    BINDINGS = [
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("n", "launch", "New run"),
        Binding("o", "sort", "Sort", show=False),
        Binding("R", "resume", "Resume", show=False),
        Binding("L", "log", "Log", show=False),
        Binding("A", "archive", "Archive", show=False),
        Binding("D", "delete", "Delete", show=False),
        Binding("w", "sweep", "Sweeps", show=False),
        Binding("e", "edit_notes", "Note/tags", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear"),
        Binding("question_mark", "app.help", "Help"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.infos: list[RunInfo] = []
        self.marked: set[str] = set()
        self.loaded = False
        self._shown: list[tuple] = []  # shown_key of each run listed, to redraw only on a change
        self.sort = "newest"
        self.columns: tuple[str, ...] = ()
        self.progress: dict[str, str] = {}  # running run id -> '43% eta 2:10'
        self._tails: dict[str, tuple[RunTail, RunState]] = {}  # the worker's, per running run

    def compose(self) -> ComposeResult:
        yield Header()
        # select_on_focus off: the key that moved the focus here must not be selected, then replaced
        yield Input(
            placeholder="filter: type to narrow (id, status, method, preset)…",
            id="filter",
            compact=True,
            select_on_focus=False,
        )
        yield RunsTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static(id="runs-hint")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "runs"
        self.query_one("#runs", DataTable).focus()
        self._hint(0)
        self.refresh_runs()

    def on_screen_resume(self) -> None:
        self.refresh_runs()

    def on_resize(self) -> None:
        self._fill()

    @work(thread=True, exclusive=True, group="runs")
    def refresh_runs(self, repeat: bool = True) -> None:
        """List the store in a thread (it reads every summary.json), then keep it fresh."""
        worker = get_current_worker()
        while not worker.is_cancelled:
            try:
                infos = self.app.store.list()
            except ConfigError as exc:
                self.app.call_from_thread(self.app.notify, exc.message, severity="error")
                infos = []
            self.app.call_from_thread(self.show_runs, infos, self._progress(infos))
            if not repeat:
                return
            for _ in range(int(REFRESH_SECONDS / 0.1)):
                if worker.is_cancelled:
                    return
                time.sleep(0.1)

    def _progress(self, infos: list[RunInfo]) -> dict[str, str]:
        """Progress and time left of each running run (in the worker thread): its events are
        tailed from where the last poll stopped, never read whole again."""
        running = {i.id: i for i in infos if i.status == "running"}
        for gone in set(self._tails) - set(running):
            del self._tails[gone]
        out = {}
        for rid, info in running.items():
            tail, state = self._tails.setdefault(rid, (RunTail(RunDir(info.path)), RunState()))
            try:
                poll = tail.poll()
            except OSError:
                continue
            if poll.reset:
                state.reset()
            for e in poll.events:
                state.apply(e)
            text = run_progress(state, time.time())
            if text:
                out[rid] = text
        return out

    def show_runs(self, infos: list[RunInfo], progress: dict[str, str] | None = None) -> None:
        for launched in self.app.processes.values():
            launched.proc.poll()  # reap runs this app started that have ended (no zombies)
        self._announce_ends(infos)
        progress = progress or {}
        key = [shown_key(i) + (progress.get(i.id),) for i in infos]
        if self.loaded and key == self._shown:
            return
        self.infos, self._shown, self.progress = infos, key, progress
        self.marked &= {i.id for i in infos}
        self.loaded = True
        self._fill()

    def _announce_ends(self, infos: list[RunInfo]) -> None:
        """A run seen training that has since ended says so, wherever the app is: a notice per run
        and one terminal bell per poll."""
        was = {i.id for i in self.infos if i.status == "running"} if self.loaded else set()
        ended = [i for i in infos if i.id in was and i.status != "running"]
        for info in ended:
            severity = "information" if info.status == "completed" else "warning"
            self.app.notify(
                f"{info.id} {info.status}" + (f": {info.error}" if info.error else ""), severity=severity, timeout=10
            )
        if ended:
            self.app.bell()

    def sorted_infos(self) -> list[RunInfo]:
        key = SORTS[self.sort]
        return list(self.infos) if key is None else sorted(self.infos, key=key)

    def _fill(self) -> None:
        table = self.query_one("#runs", DataTable)
        current = self.selected_id()
        needle = self.query_one("#filter", Input).value
        shown = [i for i in self.sorted_infos() if matches(i, needle)]
        rows = []
        for i in shown:
            cells = run_cells(i)
            cells["run"] = Text(short_id(i.id))
            if i.id in self.progress and i.status == "running":
                cells["status"] = cells["status"] + Text(f" {self.progress[i.id]}", style="dim")
            if i.id in self.marked:
                cells["status"] = Text("✓ ", style="bold") + cells["status"]
            rows.append(cells)
        self._set_columns(rows)
        for i, cells in zip(shown, rows):
            table.add_row(*(cells[c] for c in self.columns), key=i.id)
        ids = [i.id for i in shown]
        if current in ids:
            table.move_cursor(row=ids.index(current), animate=False)
        self._hint(len(shown))

    def _set_columns(self, rows: list[dict[str, Text]]) -> None:
        """The columns for this width; the id column takes the room left, and a longer id keeps
        its end (the unique part, which `ssltui show/resume` accept) after a '…'."""
        table = self.query_one("#runs", DataTable)
        self.columns = columns_for(self.size.width)
        table.clear(columns=True)
        last = self.columns[-1]
        widths = {c: max([len(c)] + [r[c].cell_len for r in rows]) for c in self.columns}
        # 2 cells of padding per column, 2 for the vertical scrollbar's gutter, 2 for the screen's edges
        room = self.size.width - sum(widths[c] for c in self.columns[:-1]) - 2 * len(self.columns) - 4
        width = max(12, min(widths[last], room))
        for r in rows:
            if r[last].cell_len > width:
                r[last] = Text("…" + r[last].plain[-(width - 1) :])
        widths[last] = width
        for col in self.columns:  # every width given: the table never squeezes a column to its header
            table.add_column(col, key=col, width=widths[col])

    def _hint(self, shown: int) -> None:
        if not self.loaded:  # the store is still being read: nothing is known to be missing yet
            hint = Text(f"loading runs from {self.app.store.root}…", style="dim")
        elif not self.infos:
            hint = Text(f"no runs yet in {self.app.store.root} · n: launch one", style="dim")
        else:
            order = f"{self.sort} first" if self.sort in ("newest", "oldest") else f"by {self.sort}"
            hint = Text(f"{shown} of {len(self.infos)} runs, {order}", style="dim")
            if self.marked:
                hint.append(f" · {len(self.marked)} marked", style="bold")
            hint.append("   o sort R resume L log A archive D delete w sweeps", style="dim")
        self.query_one("#runs-hint", Static).update(hint)

    @on(Input.Changed, "#filter")
    def _filter_changed(self) -> None:
        self._fill()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.set_focus(self.query_one("#runs", DataTable))

    def take_text(self, event: Key | Paste) -> bool:
        """Called by the app for each key and paste before anything else sees it: True when it went
        into the filter. While the table has the focus, a printable key that is no binding opens the
        filter with that character; so does a bound key followed at once by more typing (a burst:
        a paste, a fast typist over SSH), so a word starting with `c` is not Compare. The filter
        takes the focus at once, so the rest of the burst goes to it in order. A paste always
        filters (its first line)."""
        table = self.query_one("#runs", DataTable)
        flt = self.query_one("#filter", Input)
        if self.focused is flt or self.app.screen is not self:
            return False
        if isinstance(event, Paste):
            text = "".join(ch for ch in (event.text.strip().splitlines() or [""])[0] if ch.isprintable())
            if not text:
                return False
            self._type(flt, text)
            return True
        if self.focused is not table:
            return False
        char = event.character
        if not char or len(char) != 1 or not char.isprintable():
            return False
        if event.key == "slash":
            self.set_focus(flt)  # the filter opens; the slash is not part of it
            return True
        bound = self.active_keys()
        if event.key in bound and not self.app.typing_follows(bound):
            return False  # a bound key on its own (or among bound keys only) acts
        self._type(flt, char)
        return True

    def _type(self, flt: Input, text: str) -> None:
        flt.value += text
        flt.cursor_position = len(flt.value)
        self.set_focus(flt)

    def active_keys(self) -> set[str]:
        """Keys bound on this screen and its table (they act; the others type into the filter)."""
        keys = set()
        for bindings in (self.BINDINGS, RunsTable.BINDINGS, NavTable.BINDINGS):
            for b in bindings:
                keys.update(k.strip() for k in b.key.split(","))
        return keys

    # ------------------------------------------------------------ actions
    def selected_id(self) -> str | None:
        table = self.query_one("#runs", DataTable)
        if not table.row_count or table.cursor_row >= table.row_count:
            return None
        return table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value

    def chosen_ids(self) -> list[str]:
        """The marked runs, else the selected one."""
        ids = [i.id for i in self.infos if i.id in self.marked]
        return ids or ([self.selected_id()] if self.selected_id() else [])

    def _exists(self, run_id: str) -> bool:
        """The run is still in the store; else say so and redraw the list (deleted meanwhile)."""
        try:
            self.app.store.get(run_id)
            return True
        except ConfigError as exc:
            self.notify(exc.message, severity="warning")
            self.refresh_runs()
            return False

    def action_open(self) -> None:
        from ssltui.tui.screens.live import LiveScreen

        run_id = self.selected_id()
        if run_id and self._exists(run_id):
            self.app.push_screen(LiveScreen(run_id))

    @on(DataTable.RowSelected, "#runs")
    def _row_selected(self) -> None:
        self.action_open()

    def action_mark(self) -> None:
        run_id = self.selected_id()
        if run_id:
            self.marked ^= {run_id}
            self._fill()
            table = self.query_one("#runs", DataTable)
            if table.cursor_row + 1 < table.row_count:
                table.move_cursor(row=table.cursor_row + 1, animate=False)

    def action_compare(self) -> None:
        from ssltui.tui.screens.results import ResultsScreen

        ids = self.chosen_ids()
        if ids:
            self.app.push_screen(ResultsScreen(ids))

    def action_launch(self) -> None:
        from ssltui.tui.screens.launch import LaunchScreen

        self.app.push_screen(LaunchScreen())

    def action_sort(self) -> None:
        names = list(SORTS)
        self.sort = names[(names.index(self.sort) + 1) % len(names)]
        self._fill()

    def action_resume(self) -> None:
        from ssltui.tui.screens.live import LiveScreen

        run_id = self.selected_id()
        info = next((i for i in self.infos if i.id == run_id), None)
        if info is None:
            return
        if info.status not in RESUMABLE:
            self.notify(f"{run_id} is {info.status}; R resumes an interrupted, failed or stale run", severity="warning")
            return
        if resume_run(self.app, run_id):
            self.app.push_screen(LiveScreen(run_id))

    def action_log(self) -> None:
        from ssltui.tui.screens.logview import LogScreen

        run_id = self.selected_id()
        if run_id and self._exists(run_id):
            self.app.push_screen(LogScreen(run_id))

    def action_edit_notes(self) -> None:
        """Edit the selected run's note and tags (written to its notes.json)."""
        run_id = self.selected_id()
        if not run_id or not self._exists(run_id):
            return
        run = self.app.store.get(run_id)

        def saved(notes: RunNotes | None) -> None:
            if notes is None:
                return
            try:
                run.write_notes(notes)
            except OSError as exc:
                self.notify(f"could not write the note: {exc.strerror}", severity="error")
                return
            self.notify(f"{run_id}: note and tags saved", timeout=3)
            self.refresh_runs()

        self.app.push_screen(EditNotes(run_id, run.read_notes()), saved)

    def action_archive(self) -> None:
        self._move("archive")

    def action_delete(self) -> None:
        self._move("delete")

    def _move(self, how: str) -> None:
        """Archive or delete the marked (else the selected) runs after a confirmation."""
        by_id = {i.id: i for i in self.infos}
        ids = [r for r in self.chosen_ids() if r in by_id]
        busy = [
            r
            for r in ids
            if by_id[r].status == "running" or (r in self.app.processes and self.app.processes[r].alive())
        ]
        ids = [r for r in ids if r not in busy]
        if busy:
            self.notify(
                f"{len(busy)} run(s) still training; cancel them first (x in the live view)", severity="warning"
            )
        if not ids:
            return
        size = sum(folder_size(by_id[r].path) for r in ids)
        size_text = f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{max(1, round(size / 1024))} kB"
        marked = bool(self.marked)
        if not marked:
            what = ids[0]
        else:  # the marks may be left from a Compare: name every run, and the one under the cursor if spared
            shown = ids if len(ids) <= 8 else ids[:7]
            what = f"{len(ids)} marked run{'s' if len(ids) != 1 else ''}: " + ", ".join(shown)
            if len(shown) < len(ids):
                what += f" and {len(ids) - len(shown)} more"
        if how == "delete":
            question, detail = f"Delete {what}?", f"{size_text} of results, checkpoints and logs are removed for good."
        else:
            question = f"Archive {what}?"
            detail = f"Moved to {self.app.store.root / '.archive'}; the list no longer shows it (move it back by hand)."
        cursor = self.selected_id()
        if marked and cursor is not None and cursor not in self.marked:
            detail += f" {cursor} (under the cursor) is not marked and stays (space marks or unmarks a run)."

        def answered(yes: bool | None) -> None:
            if yes:
                self._apply_move(how, ids)

        self.app.push_screen(Confirm(question, detail, yes=how, no="keep"), answered)

    def _apply_move(self, how: str, ids: list[str]) -> None:
        done = 0
        for run_id in ids:
            try:
                (delete_run if how == "delete" else archive_run)(self.app.store, run_id)
                done += 1
            except ConfigError as exc:
                self.notify(exc.message, severity="warning")
        self.marked -= set(ids)
        self.notify(f"{'deleted' if how == 'delete' else 'archived'} {done} run(s)", timeout=3)
        self.refresh_runs()

    def action_sweep(self) -> None:
        """The sweep of the selected run when it is a trial of one, else the newest sweep."""
        from ssltui.tui.screens.sweep import SweepScreen

        info = next((i for i in self.infos if i.id == self.selected_id()), None)
        sweep = info.summary.sweep if info is not None and info.summary is not None else None
        self.app.push_screen(SweepScreen(sweep.name if sweep is not None else None))

    def action_filter(self) -> None:
        self.set_focus(self.query_one("#filter", Input))

    def action_clear_filter(self) -> None:
        flt = self.query_one("#filter", Input)
        flt.value = ""
        self.set_focus(self.query_one("#runs", DataTable))
