"""A command's main(argv) called from Python (a test, a notebook) configures logging for its run
and then gives the caller's logging back as it found it: a root handler left behind would keep
writing to a stream the caller has since closed or redirected (a later call's log line then becomes
'--- Logging error ---' and a traceback on stderr)."""
import io
import logging
import sys
import warnings

from deep_pyramidion.data.cli_common import run_cli


def _configures_logging(argv):
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    logging.getLogger("deep_pyramidion.test_cli_logging_new").setLevel(logging.DEBUG)
    logging.getLogger("deep_pyramidion").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="from the command")
    logging.getLogger("deep_pyramidion.test").info("during the run")
    return int(argv[0])


def test_main_leaves_handlers_levels_and_warning_filters_as_it_found_them():
    root = logging.getLogger()
    mine = logging.StreamHandler(io.StringIO())
    root.addHandler(mine)
    handlers, level = list(root.handlers), root.level
    named = logging.getLogger("deep_pyramidion")
    named_level = named.level
    filters = list(warnings.filters)
    try:
        for argv in (["0"], ["1"]):
            assert run_cli(_configures_logging, argv) == int(argv[0])
            assert root.handlers == handlers and root.level == level
            assert named.level == named_level
            assert logging.getLogger("deep_pyramidion.test_cli_logging_new").level == logging.NOTSET
            assert warnings.filters == filters
    finally:
        root.removeHandler(mine)


def test_a_redirected_stderr_of_an_earlier_call_is_not_written_to_later():
    def takes_over(argv):  # the fairseq adapter's commands: their own handler, on this stderr
        _configures_logging(["0"])
        return 0

    def logs(argv):  # the data commands: basicConfig, which keeps whatever handler is there
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        logging.getLogger("test_cli_logging").warning("second call")
        return 0

    first, second = io.StringIO(), io.StringIO()
    old = sys.stderr
    try:
        sys.stderr = first
        assert run_cli(takes_over, []) == 0
        first.close()  # the caller is done with that stream
        sys.stderr = second
        assert run_cli(logs, []) == 0
    finally:
        sys.stderr = old
    assert "Logging error" not in second.getvalue()
