/**
 * A limit on bytes held at once by concurrent tasks (issue 9, docs/cases.md T13): the header pass reads 16 files
 * at a time, which is right for headers of a few KB and wrong for sixteen 100 MB ones. A task
 * asks for its bytes before allocating them and gives them back when done; a task bigger than the
 * whole budget runs alone rather than never.
 */
export class ByteBudget {
  private inFlight = 0;
  private waiting: (() => void)[] = [];

  constructor(readonly limit: number) {}

  /** Waits until `bytes` fit, takes them, and returns the function that gives them back (call once). */
  async acquire(bytes: number): Promise<() => void> {
    const take = Math.max(0, Math.min(bytes, this.limit));
    while (this.inFlight > 0 && this.inFlight + take > this.limit) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    this.inFlight += take;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inFlight -= take;
      const wake = this.waiting;
      this.waiting = [];
      for (const resolve of wake) resolve();
    };
  }

  /** Bytes taken now (for tests). */
  get used(): number {
    return this.inFlight;
  }
}
