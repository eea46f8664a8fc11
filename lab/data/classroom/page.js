// The class's grid, drawn from /api/grid and redrawn when it changes (polled every second).
// Every piece of text from the class (names, feedback) goes in with textContent: the page
// never parses data as markup.
"use strict";

const POLL_MS = 1000;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function count(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function duration(seconds) {
  return seconds < 60 ? `${Math.round(seconds)} s` : `${Math.floor(seconds / 60)} min`;
}

function header(grid) {
  const row = el("tr");
  row.append(el("th", "student"));
  for (const exercise of grid.exercises) {
    const th = el("th", exercise.id);
    th.append(el("small", exercise.title));
    row.append(th);
  }
  for (const name of ["time on current", "last feedback"]) row.append(el("th", name));
  return row;
}

function studentRow(grid, student) {
  const row = el("tr");
  row.dataset.student = student.student;
  row.append(el("th", student.student, "student"));
  for (const exercise of grid.exercises) {
    const cell = student.cells[String(exercise.number)];
    const td = el("td", cell.state, `cell ${cell.state.replace(" ", "-")}`);
    td.dataset.exercise = String(exercise.number);
    if (exercise.number === student.current) td.classList.add("current");
    if (cell.state !== "not started") {
      td.append(el("br"), el("small", `${count(cell.checks, "check")} · ${count(cell.hints, "hint")} · ${duration(cell.seconds)}`));
    }
    row.append(td);
  }
  row.append(el("td", student.current === null ? "" : duration(student.seconds)));
  row.append(el("td", student.feedback, "feedback"));
  return row;
}

function stuckItem(item) {
  const li = el("li");
  li.append(el("span", item.student, "who"),
            el("span", ` on ${String(item.exercise).padStart(2, "0")}: `),
            el("code", item.check),
            el("span", ` failing for ${duration(item.seconds)} (${count(item.failures, "check")})`));
  return li;
}

function draw(grid) {
  document.getElementById("class-name").textContent = grid.class;
  document.title = `lab class: ${grid.class}`;
  const table = document.getElementById("grid");
  table.tHead.replaceChildren(header(grid));
  table.tBodies[0].replaceChildren(...grid.students.map((s) => studentRow(grid, s)));
  const stuck = grid.stuck.length ? grid.stuck.map(stuckItem) : [el("li", "nobody", "quiet")];
  document.getElementById("stuck").replaceChildren(...stuck);
  document.body.dataset.version = String(grid.version);
}

async function poll() {
  const updated = document.getElementById("updated");
  try {
    const answer = await fetch("/api/grid", { cache: "no-store" });
    if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
    const grid = await answer.json();
    draw(grid);  // every time: the minutes of whoever is working move on too
    updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    updated.textContent = `cannot reach the class's server (${error.message}); retrying`;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
