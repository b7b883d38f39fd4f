"""The course's data sets: where each lives publicly, its checksum, size and license."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataSet:
    """One file the course uses.

    ``url`` is the public source. When ``archive_member`` is set the URL is a zip archive and the
    file is that member; ``sha256`` and ``size`` always describe the extracted file itself, which
    is also the name a mirror folder must hold (``filename``).
    """

    name: str
    filename: str
    url: str
    sha256: str
    size: int
    license: str
    description: str
    archive_member: str | None = None


REGISTRY: dict[str, DataSet] = {
    d.name: d
    for d in [
        DataSet(
            name="tinyshakespeare",
            filename="tinyshakespeare.txt",
            url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            size=1_115_394,
            license="Text in the public domain; compiled in karpathy/char-rnn (MIT license).",
            description="Tiny Shakespeare: 40,000 lines of Shakespeare's plays, plain ASCII.",
        ),
        DataSet(
            name="eng-fra",
            filename="eng-fra.txt",
            url="http://d2l-data.s3-accelerate.amazonaws.com/fra-eng.zip",
            archive_member="fra-eng/fra.txt",
            sha256="0bb85dbaa1c896844649094d7eaf2e34bee34e84fe362b26ce7e8f2e12aae104",
            size=11_669_748,
            license=(
                "CC-BY 2.0 France. Sentence pairs from the Tatoeba Project (tatoeba.org), "
                "exported by manythings.org/anki; attribution required."
            ),
            description="167,130 English-French sentence pairs, one per line: English<TAB>French.",
        ),
        DataSet(
            name="sst2_train",
            filename="sst2_train.tsv",
            url="https://dl.fbaipublicfiles.com/glue/data/SST-2.zip",
            archive_member="SST-2/train.tsv",
            sha256="48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1",
            size=3_806_081,
            license=(
                "Stanford Sentiment Treebank (Socher et al., 2013) as packaged by GLUE "
                "(Wang et al., 2018); cite both."
            ),
            description="SST-2 training phrases with binary sentiment (header sentence<TAB>label).",
        ),
        DataSet(
            name="sst2_dev",
            filename="sst2_dev.tsv",
            url="https://dl.fbaipublicfiles.com/glue/data/SST-2.zip",
            archive_member="SST-2/dev.tsv",
            sha256="54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0",
            size=94_931,
            license="As sst2_train.",
            description="SST-2 development sentences (872), used as the course's test set.",
        ),
    ]
}


def get_dataset(name: str) -> DataSet:
    """Look a data set up by name, with a helpful error for a typo."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"Unknown data set {name!r}; the registry has: {', '.join(sorted(REGISTRY))}."
        ) from None
