"""kapos.wiring reads kapos' own entry points from its dist-info (no importlib.metadata at
start-up): it must find what importlib.metadata finds, and nothing where there is nothing."""

from importlib import metadata

from kapos import wiring


def test_the_direct_reader_agrees_with_importlib_metadata():
    entries = [e for e in metadata.distribution("kapos").entry_points if e.group in ("kapos.hosts", "kapos.commands")]
    assert any(e.group == wiring.HOSTS_GROUP and e.name == "reference" for e in entries)
    for entry in entries:
        assert wiring._own_entry_point(entry.group, entry.name) == entry.value
        assert wiring._load_entry(entry.value) is entry.load()


def test_the_first_kapos_dist_info_on_the_path_answers(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, target in ((first, "os.path:join"), (second, "os:getcwd")):
        info = folder / "kapos-9.9.dist-info"
        info.mkdir(parents=True)
        (info / "entry_points.txt").write_text(
            "[other]\nreference = json:dumps\n\n# a comment\n[kapos.hosts]\n reference = %s [extra]\n" % target)
    (tmp_path / "c" / "kapos_tools-1.0.dist-info").mkdir(parents=True)  # another distribution
    path = [str(tmp_path / "missing"), str(tmp_path / "c"), str(first), str(second)]
    value = wiring._own_entry_point("kapos.hosts", "reference", path=path)
    assert value == "os.path:join [extra]"
    import os.path
    assert wiring._load_entry(value) is os.path.join
    assert wiring._own_entry_point("kapos.hosts", "nothing", path=path) is None
    assert wiring._own_entry_point("kapos.hosts", "reference", path=[str(tmp_path / "c")]) is None
