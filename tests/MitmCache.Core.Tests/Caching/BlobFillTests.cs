using MitmCache.Caching;
using MitmCache.Registry;

namespace MitmCache.Core.Tests.Caching;

public class BlobFillTests
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);

    private static BlobFill NewFill() => new(Digest.Compute([1, 2, 3]), "/tmp/unused.part", "/tmp/unused");

    [Fact]
    public void Advance_SeveralTimes_WrittenIsTheSum()
    {
        var fill = NewFill();

        fill.Advance(10);
        fill.Advance(5);

        Assert.Equal(15, fill.Written);
    }

    [Fact]
    public void WaitForAsync_AlreadyWrittenPastPosition_CompletesAtOnce()
    {
        var fill = NewFill();
        fill.Advance(10);

        Assert.True(fill.WaitForAsync(9, CancellationToken.None).IsCompletedSuccessfully);
    }

    [Fact]
    public async Task WaitForAsync_NoNewBytes_CompletesOnNextAdvance()
    {
        var fill = NewFill();
        fill.Advance(10);

        var wait = fill.WaitForAsync(10, CancellationToken.None);
        Assert.False(wait.IsCompleted);

        fill.Advance(1);
        await wait.WaitAsync(s_timeout);
    }

    [Fact]
    public async Task WaitForAsync_FillCompletesWhileWaiting_Releases()
    {
        var fill = NewFill();
        var wait = fill.WaitForAsync(0, CancellationToken.None);
        Assert.False(wait.IsCompleted);

        fill.Complete(FillOutcome.UpstreamError);

        await wait.WaitAsync(s_timeout);
    }

    [Fact]
    public void WaitForAsync_FillAlreadyCompleted_CompletesAtOnce()
    {
        var fill = NewFill();
        fill.Complete(FillOutcome.Committed);

        Assert.True(fill.WaitForAsync(1_000, CancellationToken.None).IsCompletedSuccessfully);
    }

    [Fact]
    public async Task WaitForAsync_Canceled_ThrowsOperationCanceled()
    {
        var fill = NewFill();
        using var cancellation = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => fill.WaitForAsync(0, cancellation.Token));
    }

    [Fact]
    public async Task Head_SetBeforeComplete_KeepsHead()
    {
        var fill = NewFill();

        fill.SetHead(new FillHead(3, "application/octet-stream", ProvesAccess: true));
        fill.Complete(FillOutcome.Committed);

        Assert.Equal(new FillHead(3, "application/octet-stream", ProvesAccess: true), await fill.Head);
    }

    [Fact]
    public async Task Head_CompletedWithoutHead_IsNull()
    {
        var fill = NewFill();

        fill.Complete(FillOutcome.Abandoned);

        Assert.Null(await fill.Head);
    }

    [Fact]
    public async Task Complete_Twice_FirstOutcomeWins()
    {
        var fill = NewFill();

        fill.Complete(FillOutcome.DigestMismatch);
        fill.Complete(FillOutcome.Committed);

        Assert.Equal(FillOutcome.DigestMismatch, await fill.Completion);
    }
}
