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
    const log = $('log'); log.textContent = '';
    if (!res.messages.length) { log.textContent = 'No messages in this chat yet.'; }
    const byId = {};
    for (const m of res.messages) { byId[m.mid] = m; }
    for (const m of res.messages) {
      const bubble = div('msg ' + m.direction);
      bubble.append(div('meta', (m.direction === 'bot' ? res.bot : m.name) + ' · '
        + fmt(m.time) + (m.edited ? ' · edited' : '')));
      const quoted = m.reply_to && byId[m.reply_to];
      if (quoted && !m.deleted) {
        bubble.append(div('quote',
          quoted.deleted ? '(deleted)' : (quoted.text || (quoted.file || {}).name)));
      }
      bubble.append(textOrDeleted(m));
      if (m.file && !m.deleted) { bubble.append(fileLink(m.file, true)); }
      if ((m.buttons || []).length && !m.deleted) {
        bubble.append(buttonRows(m.buttons, b => ({ user_id: $('user').value.trim(),
                                                    mid: m.mid, id: b.id })));
      }
      if (m.pressed) { bubble.append(div('meta', 'You pressed "' + m.pressed + '"')); }
      if (m.direction === 'customer' && m.accepted === false) {
        bubble.append(div('failed', '⚠ the bridge did not take it'));
      }
      log.append(bubble);
    }
  } catch (e) { $('status').textContent = 'Cannot reach the simulator: ' + e; }
}
onSubmit(() => sendForm(
  { name: $('name').value, user_id: $('user').value, text: $('text').value },
  res => "Delivered to the bridge's webhook (message " + res.mid + ').',
));
poll(1500, 'user');
""",
)
