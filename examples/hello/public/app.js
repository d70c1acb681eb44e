fetch("/graphql", {
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({ query: "{ preview { app pr commit } }" }),
})
  .then((r) => r.json())
  .then(({ data }) => {
    const p = data.preview;
    document.getElementById("who").textContent =
      `This is ${p.app}, pull request #${p.pr}, commit ${p.commit.slice(0, 7)}.`;
  })
  .catch((e) => {
    document.getElementById("who").textContent = "The function did not answer: " + e;
  });
