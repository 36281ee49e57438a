namespace MitmCache.Core.Tests;

/// <summary>Races for concurrency tests.</summary>
public static class Threads
{
    /// <summary>Runs <paramref name="call"/> on <paramref name="threads"/> dedicated threads released together.</summary>
    public static T[] AtOnce<T>(int threads, Func<T> call)
    {
        var results = new T[threads];
        using var start = new Barrier(threads);
        var running = Enumerable.Range(0, threads).Select(i => new Thread(() =>
        {
            start.SignalAndWait();
            results[i] = call();
        })).ToList();
        running.ForEach(t => t.Start());
        running.ForEach(t => t.Join());
        return results;
    }
}
