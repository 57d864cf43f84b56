// Interop with HdrHistogram (Java), the Java library's side. Run with the JDK's
// single-file launcher: java -cp hdrhistogram.jar HdrInterop.java MODE ...
//
//   percentiles LOG OUT       merge each tag's intervals of LOG (as HistogramLogProcessor
//                             does) and write "tag count p50 p90 p99 p99.9 p99.99 max"
//   write LOG EXPECTED DIR SEED
//                             write 24 random distributions plus edges as a tagged
//                             log, their percentiles to EXPECTED and each tag's
//                             outputPercentileDistribution (unit ratio 1) to DIR/TAG.hgrm
import org.HdrHistogram.*;

import java.io.*;
import java.util.*;

public class HdrInterop {
    static final double[] LEVELS = {50, 90, 99, 99.9, 99.99};

    static String line(String tag, Histogram h) {
        StringBuilder sb = new StringBuilder(tag).append(' ').append(h.getTotalCount());
        for (double p : LEVELS) sb.append(' ').append(h.getValueAtPercentile(p));
        return sb.append(' ').append(h.getMaxValue()).toString();
    }

    static void percentiles(String log, String out) throws Exception {
        Map<String, Histogram> merged = new LinkedHashMap<>();
        HistogramLogReader r = new HistogramLogReader(log);
        EncodableHistogram e;
        while ((e = r.nextIntervalHistogram()) != null) {
            Histogram h = (Histogram) e;
            String tag = h.getTag() == null ? "-" : h.getTag();
            Histogram acc = merged.get(tag);
            if (acc == null) {
                acc = h.copy();
                acc.reset();
                acc.setAutoResize(true);
                merged.put(tag, acc);
            }
            acc.add(h);
        }
        try (PrintStream ps = new PrintStream(out)) {
            for (Map.Entry<String, Histogram> m : merged.entrySet())
                ps.println(line(m.getKey(), m.getValue()));
        }
    }

    static long sample(Random rnd, int kind, long highest) {
        double v;
        switch (kind) {
            case 0: v = rnd.nextDouble() * 1e6; break;
            case 1: v = -Math.log(1 - rnd.nextDouble()) * 50000; break;
            case 2: v = Math.exp(10 + 2 * rnd.nextGaussian()); break;
            case 3: v = rnd.nextDouble() < 0.9 ? 20000 + rnd.nextDouble() * 5000
                                               : 5e6 + rnd.nextDouble() * 1e6; break;
            default: v = 1000 / Math.pow(1 - rnd.nextDouble(), 1 / 1.2); break;
        }
        return (long) Math.min(v, (double) highest);
    }

    static void write(String log, String expected, String dir, long seed) throws Exception {
        Random rnd = new Random(seed);
        long start = 1700000000000L;
        try (PrintStream logOut = new PrintStream(log); PrintStream exp = new PrintStream(expected)) {
            HistogramLogWriter w = new HistogramLogWriter(logOut);
            w.outputLogFormatVersion();
            w.outputStartTime(start);
            w.setBaseTime(start);
            w.outputBaseTime(start);
            w.outputLegend();
            List<Object[]> specs = new ArrayList<>();
            for (int i = 0; i < 24; i++)
                specs.add(new Object[] {String.format("jrand%02d", i), i % 4 == 3 ? 1000L : 1L,
                        i % 3 == 2 ? 100000000L : 3600000000000L, 1 + i % 5, i % 5,
                        1 + rnd.nextInt(200000), 1 + rnd.nextInt(4), 0});
            specs.add(new Object[] {"jempty", 1L, 3600000000000L, 3, 0, 0, 1, 1});
            specs.add(new Object[] {"jone", 1L, 3600000000000L, 3, 0, 1, 1, 2});
            specs.add(new Object[] {"jhightrack", 1L, 3600000000000L, 3, 0, 3, 2, 3});
            for (int sf = 1; sf <= 5; sf++)
                specs.add(new Object[] {"jsf" + sf, 1L, 1000000000L, sf, 0, 7, 1, 4});
            long[] small = {1, 2, 3, 999, 1000, 123456, 999999999};
            for (Object[] s : specs) {
                String tag = (String) s[0];
                long lo = (Long) s[1], hi = (Long) s[2];
                int sf = (Integer) s[3], kind = (Integer) s[4], n = (Integer) s[5];
                int intervals = (Integer) s[6], edge = (Integer) s[7];
                Histogram all = new Histogram(lo, hi, sf);
                Histogram iv = new Histogram(lo, hi, sf);
                for (int k = 0; k < intervals; k++) {
                    iv.reset();
                    for (int j = k; j < n; j += intervals) {
                        long v = edge == 0 ? sample(rnd, kind, hi)
                               : edge == 2 ? 4242 : edge == 3 ? hi : small[j];
                        iv.recordValue(v);
                    }
                    iv.setTag(tag);
                    iv.setStartTimeStamp(start + 1000L * k);
                    iv.setEndTimeStamp(start + 1000L * (k + 1));
                    w.outputIntervalHistogram(iv);
                    all.add(iv);
                }
                exp.println(line(tag, all));
                try (PrintStream h = new PrintStream(dir + "/" + tag + ".hgrm")) {
                    all.outputPercentileDistribution(h, 5, 1.0);
                }
            }
        }
    }

    public static void main(String[] a) throws Exception {
        if (a.length == 3 && a[0].equals("percentiles")) percentiles(a[1], a[2]);
        else if (a.length == 5 && a[0].equals("write")) write(a[1], a[2], a[3], Long.parseLong(a[4]));
        else { System.err.println("usage: HdrInterop percentiles LOG OUT | write LOG EXPECTED DIR SEED"); System.exit(2); }
    }
}
