"""The code in the documentation pages runs and prints what the pages say."""

import doctest
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "doc"


@pytest.mark.parametrize("page", ["user_guide.rst", "quick_start.rst"])
def test_doc_page_examples(page):
    path = DOC / page
    if not path.exists():
        pytest.skip(f"{page} is not in this checkout")
    result = doctest.testfile(
        str(path), module_relative=False, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0
    assert result.failed == 0
