from stacks.tools import config_reference as docs


def test_readme_config_reference_matches_the_config_model():
    assert docs.main(["--check"]) == 0, (
        "run `.venv/bin/python -m stacks.tools.config_reference` to regenerate the README's config reference"
    )


def test_reference_documents_every_model_key():
    text = docs.generate()
    for key in ("`llmstack:models`", "`tensorParallelSize`", "`weightsGiB`", "`cache`", "`size`"):
        assert key in text
