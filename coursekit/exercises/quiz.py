"""Multiple-choice quizzes: ipywidgets with feedback, or plain text without a widget front end."""

from __future__ import annotations

import html

from coursekit import progress
from coursekit.exercises.registry import QuizQuestion, all_quiz_questions
from coursekit.viz import show_widget, widgets_available

LETTERS = "abcdefgh"


def _questions(notebook: str) -> list[QuizQuestion]:
    questions = [q for q in all_quiz_questions() if q.notebook == notebook]
    if not questions:
        raise KeyError(f"No quiz questions are registered for notebook {notebook!r}.")
    return questions


def quiz_text(notebook: str) -> str:
    """The quiz of ``notebook`` as text, with how to answer it from code."""
    lines = [f"Quiz for notebook {notebook}"]
    for q in _questions(notebook):
        lines.append("")
        lines.append(f"[{q.id}] {q.question}")
        lines += [f"   ({LETTERS[i]}) {option}" for i, option in enumerate(q.options)]
    lines.append("")
    lines.append("Answer in code: coursekit.exercises.answer_quiz('<id>', '<letter>')")
    return "\n".join(lines)


def quiz_feedback(q: QuizQuestion, index: int) -> tuple[bool, str, str]:
    """Whether option ``index`` of ``q`` is right, the verdict, and what to read after it.

    A wrong option gets the right answer's letter in the verdict, then why the chosen option is
    wrong (its ``feedback``, where the question has some) before the explanation.
    """
    if index == q.answer:
        return True, "Correct.", q.explanation
    verdict = f"Not quite: the answer is ({LETTERS[q.answer]})."
    why = q.feedback[index] if q.feedback else ""
    if not why:
        return False, verdict, q.explanation
    return False, verdict, f"({LETTERS[index]}) {why} {q.explanation}"


def answer_quiz(question_id: str, choice: str | int) -> bool:
    """Answer a quiz question by letter or index; prints feedback and records it."""
    matches = [q for q in all_quiz_questions() if q.id == question_id]
    if not matches:
        print(f"✗ No quiz question {question_id!r}.")
        return False
    q = matches[0]
    index = LETTERS.index(choice.lower()) if isinstance(choice, str) else int(choice)
    if not 0 <= index < len(q.options):
        print(f"✗ {question_id} has options (a)-({LETTERS[len(q.options) - 1]}).")
        return False
    correct, verdict, detail = quiz_feedback(q, index)
    progress.record_quiz(q.notebook, q.id, correct)
    print(f"{'✓' if correct else '✗'} {verdict} {detail}")
    return correct


def _feedback_html(q: QuizQuestion, index: int) -> str:
    """The widget's message for option ``index`` of ``q``; records the answer in the progress."""
    correct, verdict, detail = quiz_feedback(q, index)
    progress.record_quiz(q.notebook, q.id, correct)
    mark = "✅" if correct else "❌"
    return f"<b>{mark} {verdict}</b> {html.escape(detail, quote=False)}"


def _question_widget(q: QuizQuestion):  # -> ipywidgets.VBox
    import ipywidgets as w

    choices = w.RadioButtons(
        options=[(f"({LETTERS[i]}) {o}", i) for i, o in enumerate(q.options)],
        value=None,
        layout=w.Layout(width="auto"),
    )
    button = w.Button(description="Check answer", button_style="primary")
    feedback = w.HTML()

    def on_click(_: object) -> None:
        if choices.value is None:
            feedback.value = "<i>Pick an option first.</i>"
            return
        feedback.value = _feedback_html(q, choices.value)

    button.on_click(on_click)
    box = w.VBox([w.HTML(f"<b>{q.id}</b>: {q.question}"), choices, button, feedback])
    box.add_class("coursekit-quiz")
    return box


def show_quiz(notebook: str) -> None:
    """Show the quiz of ``notebook``: widgets in JupyterLab, text elsewhere."""
    text = quiz_text(notebook)
    if not widgets_available():
        print(text)
        return
    import ipywidgets as w

    box = w.VBox([_question_widget(q) for q in _questions(notebook)])
    show_widget(box, fallback=text)
