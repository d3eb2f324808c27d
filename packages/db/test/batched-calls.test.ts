// BatchedCalls (src/batch-queue.ts) alone: outputs go back to their callers in order, calls that arrive while
// the statements run go together, and a failed batch is retried per call only when `retryAlone` says so.
import t from 'tap'
import { BatchedCalls } from '../src/batch-queue.js'

t.test('each caller gets its own output; calls arriving while one runs share the next batch', async (t) => {
  const batches: number[][] = []
  const calls = new BatchedCalls<number, number>(
    async (inputs) => {
      batches.push(inputs)
      await new Promise((resolve) => setImmediate(resolve))
      return inputs.map((n) => n * 10)
    },
    { maxInFlight: 1, maxBatch: 100 },
  )
  const outputs = await Promise.all([1, 2, 3, 4, 5].map((n) => calls.call(n)))
  t.same(outputs, [10, 20, 30, 40, 50])
  t.same(batches, [[1], [2, 3, 4, 5]], 'the first went at once, the rest together')
  t.equal(calls.statements, 2)
})

t.test('a failed batch: every caller gets the error, or each is retried alone', async (t) => {
  const run = async (inputs: number[]) => {
    if (inputs.includes(3)) throw new Error(`bad input in ${inputs.join(',')}`)
    return inputs.map((n) => -n)
  }
  const settle = (calls: BatchedCalls<number, number>) =>
    Promise.allSettled([0, 1, 2, 3, 4].map((n) => calls.call(n))).then((all) =>
      all.map((o) => (o.status === 'fulfilled' ? o.value : 'rejected')),
    )
  const opts = { maxInFlight: 1, maxBatch: 100 }
  t.same(await settle(new BatchedCalls(run, opts)), [-0, 'rejected', 'rejected', 'rejected', 'rejected'])
  const retrying = new BatchedCalls(run, { ...opts, retryAlone: () => true })
  t.same(await settle(retrying), [-0, -1, -2, 'rejected', -4], 'only the bad input failed')
  t.equal(retrying.statements, 2 + 4, 'two batches, then four calls alone')
})

t.test('a batch answered with the wrong number of outputs is an error, not a wrong answer', async (t) => {
  const calls = new BatchedCalls<number, number>(async () => [1], { maxInFlight: 1, maxBatch: 100 })
  const outcomes = await Promise.allSettled([calls.call(1), calls.call(2), calls.call(3)])
  t.equal(outcomes[0]?.status, 'fulfilled')
  t.same(
    outcomes.slice(1).map((o) => o.status),
    ['rejected', 'rejected'],
  )
})

t.test('`one` answers a batch of one call (an idle caller, a call retried alone); `run` the larger ones', async (t) => {
  const used: string[] = []
  const calls = new BatchedCalls<number, number>(
    async (inputs) => {
      used.push(`run ${inputs.join(',')}`)
      if (inputs.includes(3)) throw new Error('bad input')
      return inputs.map((n) => n + 100)
    },
    {
      maxInFlight: 1,
      maxBatch: 100,
      retryAlone: () => true,
      one: async (n) => {
        used.push(`one ${n}`)
        if (n === 3) throw new Error('bad input')
        return n + 100
      },
    },
  )
  const settled = await Promise.allSettled([1, 2, 3, 4].map((n) => calls.call(n)))
  t.same(
    settled.map((o) => (o.status === 'fulfilled' ? o.value : 'rejected')),
    [101, 102, 'rejected', 104],
  )
  t.same(used, ['one 1', 'run 2,3,4', 'one 2', 'one 3', 'one 4'])
})
