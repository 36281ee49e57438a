using MitmCache.Caching;

namespace MitmCache.Core.Tests.Caching;

public sealed class IndexFrontTests
{
    [Fact]
    public void Find_FoundOnce_LoadedOnce_AbsentLoadedEveryTime()
    {
        var front = new IndexFront<string>(capacity: 10);
        var loads = 0;

        Assert.Equal("v", front.Find("k", () => { loads++; return "v"; }));
        Assert.Equal("v", front.Find("k", () => { loads++; return "other"; }));
        Assert.Null(front.Find("absent", () => { loads++; return null; }));
        Assert.Null(front.Find("absent", () => { loads++; return null; }));

        Assert.Equal(3, loads);
    }

    [Fact]
    public void Write_ReplacesOrForgets_AndAFailedWriteLeavesNothing()
    {
        var front = new IndexFront<string>(capacity: 10);
        front.Find("k", () => "old");

        front.Write("k", "new", () => { });
        Assert.Equal("new", front.Find("k", () => "loaded"));

        front.Write("k", null, () => { });
        Assert.Equal("loaded", front.Find("k", () => "loaded"));

        Assert.Throws<IOException>(() => front.Write("k", "never", () => throw new IOException("disk full")));
        Assert.Equal("from-index", front.Find("k", () => "from-index"));
    }

    [Fact]
    public async Task Write_WhileALookupIsLoadingTheOldValue_WaitsForItAndWins()
    {
        var front = new IndexFront<string>(capacity: 10);
        front.Write("warm", "up", () => { }); // compiled: below, the writer thread can block on nothing but the key's lock
        using var loading = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var lookup = Task.Run(() => front.Find("k", () =>
        {
            loading.Set();
            release.Wait();
            return "old"; // read from the index before the write below
        }));
        loading.Wait();
        var wroteDuringLoad = false;
        var writer = new Thread(() => front.Write("k", "new", () => wroteDuringLoad = !release.IsSet));
        writer.Start();

        // Release the lookup only once the writer is blocked (on the lookup's lock) or done (a write that does not wait).
        Assert.True(SpinWait.SpinUntil(() => (writer.ThreadState & (ThreadState.WaitSleepJoin | ThreadState.Stopped)) != 0, TimeSpan.FromSeconds(10)));
        release.Set();
        await lookup;
        Assert.True(writer.Join(TimeSpan.FromSeconds(10)));

        Assert.False(wroteDuringLoad, "the write ran while the lookup was loading the old value");
        Assert.Equal("new", front.Find("k", () => "loaded"));
    }

    [Fact]
    public void Find_PastCapacity_StartsOver()
    {
        var front = new IndexFront<string>(capacity: 3);
        foreach (var key in new[] { "a", "b", "c", "d" })
        {
            front.Find(key, () => key);
        }

        Assert.Equal(1, front.Count);
    }
}
