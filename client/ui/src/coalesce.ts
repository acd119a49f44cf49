// A read that signals can ask for many times over: while one runs, further asks fold into one more
// read after it, not one read per signal.
export function coalesced(read: () => Promise<void>): () => Promise<void> {
  let reading = false;
  let again = false;
  const run = async (): Promise<void> => {
    if (reading) {
      again = true;
      return;
    }
    reading = true;
    try {
      await read();
    } finally {
      reading = false;
      if (again) {
        again = false;
        void run();
      }
    }
  };
  return run;
}
