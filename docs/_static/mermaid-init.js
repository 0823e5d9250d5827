// Draw every <pre class="mermaid"> once the page has loaded (mermaid.min.js is vendored).
mermaid.initialize({ startOnLoad: true, theme: "default", securityLevel: "strict" });
