import t from 'tap'
import { bySession, checkSession } from '../src/index.js'

const user = (text: string) => ({ sender: 'User', text })
const ai = (text: string) => ({ sender: 'Machine', text })

t.test('every acknowledged question stored once and answered: nothing wrong', async (t) => {
  const messages = [user('p-1'), ai('p-1'), user('old-question'), ai('x'), user('p-2'), ai('You said p-2')]
  t.same(checkSession(messages, new Set(['p-1', 'p-2']), 'p-'), { lost: 0, duplicated: 0, unanswered: 0 })
})

t.test('lost, duplicated and unanswered turns are each counted', async (t) => {
  const messages = [user('p-1'), ai('p-1'), user('p-1'), ai('p-1'), user('p-3'), user('p-4'), ai('other')]
  t.same(checkSession(messages, new Set(['p-1', 'p-2', 'p-3', 'p-4']), 'p-'), {
    lost: 1, // p-2
    duplicated: 1, // p-1
    unanswered: 2, // p-3 followed by a user message, p-4 by a reply that does not contain it
  })
})

t.test('a stored question that was never acknowledged (cut off at the end) is not wrong', async (t) => {
  t.same(checkSession([user('p-9')], new Set(), 'p-'), { lost: 0, duplicated: 0, unanswered: 0 })
})

t.test('turns grouped by session', async (t) => {
  const grouped = bySession([
    { question: 'a', session: 's1' },
    { question: 'b', session: 's2' },
    { question: 'c', session: 's1' },
  ])
  t.same(
    [...grouped.entries()].map(([s, q]) => [s, [...q]]),
    [
      ['s1', ['a', 'c']],
      ['s2', ['b']],
    ],
  )
})
