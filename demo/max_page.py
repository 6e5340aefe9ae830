"""The MAX customer's page (served by ``demo/max_customer.py``): a form to write to the company's
bot as a MAX user, and the conversation with the bot's answers, edits, deletions and the buttons
under them to press.
"""

from __future__ import annotations

from page import html

PAGE = html(
    "MAX customer (bridge demo)",
    "#f1effb",
    """\
 #head { margin-top: 1.5rem; font-weight: 600; }
 #log { margin-top: .5rem; display: flex; flex-direction: column; gap: .5rem; }
 .msg { padding: .5rem .8rem; border-radius: .6rem; max-width: 80%; white-space: pre-wrap; }
 .customer { align-self: flex-end; background: #ddd6ff; }
 .bot { align-self: flex-start; background: #f0f2f5; }
 .meta { font-size: .75rem; color: #666; } .deleted { color: #999; font-style: italic; }
 .failed { font-size: .75rem; color: #c00; }
 .quote { border-left: 3px solid #6b4eff; padding-left: .4rem; color: #555; font-size: .85rem;
        margin-bottom: .2rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
""",
    """\
<h1>MAX &mdash; a MAX user writes to the bot @BOT@</h1>
<p class="hint">This page plays a MAX user writing to the company's bot @BOT@. The bot lives
on a local MAX Bot API simulator, which posts what you send here to the bridge's webhook
subscription (with its secret), as MAX does; the company's staff answer in Matrix, and their
answers (the bot's messages, edits and deletions) appear below. The page refreshes itself.</p>
<form id="f">
 <label for="name">Your name</label><input id="name" value="@NAME@" required>
 <label for="user">MAX user id</label><input id="user" value="@USER_ID@" required
   inputmode="numeric" pattern="[0-9]+">
 <label for="text">Message</label><textarea id="text"></textarea>
 <label for="file">File (optional)</label><input id="file" type="file">
 <button>Send</button><div id="status"></div>
</form>
<div id="head">Chat with @BOT@</div>
<div id="log"></div>
""",
    """\
async function refresh() {
  try {
    const r = await fetch('/api/messages?user=' + encodeURIComponent($('user').value.trim()));
    const res = await r.json();
    showChat(res.messages, { id: 'mid', company: 'bot', name: res.bot,
                             press: (m, b) => ({ user_id: res.user_id, mid: m.mid, id: b.id }) });
  } catch (e) { $('status').textContent = 'Cannot reach the simulator: ' + e; }
}
onSubmit(() => sendForm(
  { name: $('name').value, user_id: $('user').value, text: $('text').value },
  res => "Delivered to the bridge's webhook (message " + res.mid + ').',
));
poll(1500, 'user');
""",
)
